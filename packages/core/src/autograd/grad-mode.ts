let enabled = true;

/** True when ops record the autograd tape. */
export function isGradEnabled(): boolean {
  return enabled;
}

/** Run `fn` without recording gradients (evaluation, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn);
}

/** Run `fn` with gradient recording on, even inside `noGrad`. */
export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn);
}

/** Run `fn` with gradient recording set to `mode`. */
export function withGradMode<T>(mode: boolean, fn: () => T): T {
  const prev = enabled;
  enabled = mode;
  try {
    return fn();
  } finally {
    enabled = prev;
  }
}
