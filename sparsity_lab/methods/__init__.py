"""Methods, one module per family.

saliency     scores → masks: magnitude, OBD, OBS, Kron-OBD / Kron-OBS (MLP units, conv filters), filter L1
hessian      the curvature they need: Hessian diagonals, Gauss–Newton, empirical Fisher, K-FAC, inverses
obs          Optimal Brain Surgeon's compensating update, one weight or a block at a time
lottery      iterative magnitude pruning with rewinding, and its controls
group_lasso  group penalties, the proximal step, Structured Sparsity Learning
slimming     network slimming: L1 on BatchNorm scales
sgmcmc       SGLD, pSGLD, SGHMC samplers and a sample collector
"""
