"""Figures as pure functions returning plotly `go.Figure`; one module per method family, and `shared` for the
palette, the layout and the views several families draw. Never imports ipywidgets or `sparsity_lab.methods`."""
