"""Figures as pure functions returning plotly `go.Figure`; one module per topic. Never imports ipywidgets."""
