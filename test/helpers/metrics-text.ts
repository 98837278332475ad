/** Reading the Prometheus text format the agent serves at /metrics. */

/**
 * The sum of metric `name`'s samples that carry every label of `want` (all
 * its samples, with no `want`); undefined when none does: an absent metric
 * is not a zero.
 */
export function metricSum(text: string, name: string, want: Record<string, string> = {}): number | undefined {
  let sum: number | undefined;
  for (const line of text.split('\n')) {
    const labelled = line.startsWith(`${name}{`);
    if (!labelled && !line.startsWith(`${name} `)) continue;
    const labels: Record<string, string> = labelled
      ? Object.fromEntries([...line.slice(name.length, line.lastIndexOf('}')).matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]))
      : {};
    if (Object.entries(want).every(([k, v]) => labels[k] === v)) sum = (sum ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}
