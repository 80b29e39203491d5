"""Visible checks for the claims a lesson makes: a ✓ line when the claim holds, a clear failure when it does not.

    claim("the ensemble has a lower NLL than one model", nll_ens < nll_one, f"{nll_ens:.3f} < {nll_one:.3f}")

Under nbval a failed claim fails the lesson's test, so a lesson that stops demonstrating its point is caught.
"""

from __future__ import annotations


class ClaimFailed(AssertionError):
    """A lesson's claim did not hold on this run."""


def claim(statement: str, holds: bool, evidence: str = "") -> bool:
    """Print `✓ statement (evidence)` if `holds`, else raise ClaimFailed naming the statement and the evidence."""
    if not holds:
        raise ClaimFailed(f"✗ claim failed: {statement}" + (f" — measured: {evidence}" if evidence else ""))
    print(f"✓ {statement}" + (f"  ({evidence})" if evidence else ""))
    return True
