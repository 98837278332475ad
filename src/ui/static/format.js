// bpfagent web UI: how numbers, times and text are written on the page.

export const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

export function fmtBytes(n) {
  if (n == null || !Number.isFinite(n)) return '–';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

export function fmtCount(n) {
  if (n == null || !Number.isFinite(n)) return '–';
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(0)}k`;
  return String(n);
}

export function fmtRate(r) {
  if (r == null || !Number.isFinite(r)) return '–';
  if (r === 0) return '0/s';
  if (r < 0.01) return '<0.01/s';
  if (r < 10) return `${r.toFixed(2)}/s`;
  if (r < 100) return `${r.toFixed(1)}/s`;
  return `${Math.round(r)}/s`;
}

export function fmtUs(us) {
  if (us == null || !Number.isFinite(us)) return '–';
  if (us < 1000) return `${Math.round(us)} µs`;
  if (us < 1e6) return `${(us / 1000).toFixed(us < 1e4 ? 1 : 0)} ms`;
  return `${(us / 1e6).toFixed(2)} s`;
}

export function fmtTime(ts) {
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? String(ts ?? '') : d.toLocaleTimeString([], { hour12: false });
}

export const failedTotal = (f) => (f ? (f.refused ?? 0) + (f.timeout ?? 0) + (f.reset ?? 0) : 0);

export const pct = (r) => (r == null || !Number.isFinite(r) ? '–' : `${Math.round(r * 1000) / 10}%`);
