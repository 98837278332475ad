/**
 * Kernel tests need root. Without it they skip, except under CI=true, where
 * they run anyway and fail: CI must never pass by skipping them.
 */
export const KERNEL_SKIP: string | false =
  process.getuid?.() === 0 || process.env.CI === 'true' ? false : 'kernel tests need root (run as root, or with CI=true to fail instead)';
