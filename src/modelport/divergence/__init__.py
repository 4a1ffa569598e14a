"""Where two ports diverge: per-tensor comparison, the first diverging tensor, bisection, INT8 error ranking."""
