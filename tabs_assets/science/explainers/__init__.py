"""Counterfactual path explainers (SCIENCE.md §4): Latent Shift, REVISE, Wachter.

Every explainer is batched: one call explains a whole split in chunks of rows, each chunk with
whole-tensor operations (no per-row Python loop), and every path has exactly S = n_steps + 1
points, point 0 being the start. Gradients are taken with ``torch.autograd.grad`` with respect
to the latents only, so nothing ever accumulates into model parameters.

Fixes of the research code kept visible here (SCIENCE.md §9): the REVISE loss is evaluated at the
current latent (not at the original input), its distance term is really applied, the one-shot
Latent Shift builds its [S, B, H] latents by broadcasting (no scrambled reshape), and every path
has the same number of points.

The distance term of REVISE and Wachter is a smooth L1 (pseudo-Huber) by default: at z0,
Dec(E(x)) - x is rounding noise, and the subgradient sign(d) of |d| turns that noise into a full
unit pull in an arbitrary direction, so the plain L1 makes the paths chaotic (a 1e-7 change of
the input moved points by tens of units). sqrt(d^2 + s^2) - s has the gradient d / sqrt(d^2 + s^2),
which is ~d/s near 0 (noise stays noise) and ~sign(d) beyond s (the L1 pull of REVISE). The plain
subgradient stays available as ``distance: l1_subgradient``.
"""
