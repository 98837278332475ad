import { isIP } from 'node:net';

/**
 * One text form per address, so that the API server's strings and the agent's
 * match: lowercase, and an IPv4-mapped IPv6 address (::ffff:a.b.c.d, as a
 * dual-stack socket reports an IPv4 peer) as plain IPv4.
 */
export function normalizeIp(ip: string): string {
  const s = ip.trim().toLowerCase();
  if (s.startsWith('::ffff:') && isIP(s.slice(7)) === 4) return s.slice(7);
  return s;
}
