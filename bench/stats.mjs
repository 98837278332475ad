// Statistics the benchmark reports share: medians and bootstrap intervals.

/** A run during which other work used more CPU than this (cores) was disturbed (run.sh's BUSY_MILLICORES). */
export const OTHER_CORES_WARN = 0.1;

export const sum = (xs) => xs.reduce((a, b) => a + b, 0);

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** A seeded generator (mulberry32): the same resamples, hence the same interval, every time. */
function seeded(seed = 0x9e3779b9) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Bootstrap 90% intervals (5th to 95th percentile, `draws` resamples with
 * replacement) of median(a), and of median(a) / median(b) when b is given:
 * how far they could move in another run of the same length.
 * undefined with fewer than 3 values on either side.
 */
export function bootstrap(a, b, draws = 2000) {
  if (a.length < 3 || (b && b.length < 3)) return undefined;
  const rand = seeded();
  const resample = (xs) => xs.map(() => xs[Math.floor(rand() * xs.length)]);
  const medians = [];
  const ratios = [];
  for (let i = 0; i < draws; i++) {
    const m = median(resample(a));
    medians.push(m);
    if (b) ratios.push(m / median(resample(b)));
  }
  const range = (xs) => {
    xs.sort((x, y) => x - y);
    return [xs[Math.floor(draws * 0.05)], xs[Math.floor(draws * 0.95)]];
  };
  return { median: range(medians), ratio: b ? range(ratios) : undefined };
}
