"""Interactive views (ipywidgets + plotly FigureWidget) composed from `sparsity_lab.plots`; one module per method
family, and `shared` for the `View` contract and tables.

A widget is a thin view: it never computes a method, and a test can drive it headless by setting a control's
`.value` and reading the figure's data.
"""
