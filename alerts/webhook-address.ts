import dns from 'node:dns';
import net from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * Which addresses a webhook may reach (SSRF, finding 2 of issue 9). The classification is
 * ipaddr.js's `range()`, kept by its maintainers from the IANA special-purpose address
 * registries (IPv4 and IPv6): anything but `unicast` is non-public (loopback, private,
 * link-local, CGNAT, benchmarking 198.18/15, documentation, NAT64 64:ff9b::/96, site-local
 * fec0::/10, 6to4, Teredo, multicast, reserved…). IPv4-mapped IPv6 (`::ffff:7f00:1`) is
 * unwrapped to its IPv4 address first.
 *
 * The check runs where the connection is made: `safeLookup` is the `lookup` of the delivery
 * agents, so every new connection of every attempt is checked against what the name resolves
 * to then (DNS rebinding gets a refusal, not a connection); literal addresses in the URL,
 * which Node connects to without a lookup, are checked with `addressProblem` before the
 * request. Registration (`urlProblem`) uses the same resolver and rule.
 */

/** Resolves a host name to its addresses (injectable for tests; production: the system resolver). */
export type Resolver = (host: string) => Promise<string[]>;

export const systemResolver: Resolver = async (host) => (await dns.promises.lookup(host, { all: true, verbatim: true })).map((a) => a.address);

/** The ipaddr.js range of an address, IPv4-mapped IPv6 unwrapped; null when not an address. */
export function addressRange(ip: string): string | null {
  if (!ipaddr.isValid(ip)) return null;
  return ipaddr.process(ip).range();
}

export const isPublicAddress = (ip: string): boolean => addressRange(ip) === 'unicast';

/** Why a connection to `ip` is refused, or null. */
export function addressProblem(ip: string): string | null {
  const range = addressRange(ip);
  if (range === 'unicast') return null;
  return `non-public address (${ip}${range ? `, ${range}` : ''}); set WEBHOOK_ALLOW_PRIVATE to allow it`;
}

/** Thrown by the lookup for a refused address; its message goes to the attempt log. */
export class RefusedAddressError extends Error {
  code = 'EREFUSEDADDRESS';
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void;

/**
 * A `lookup` for net/http agents that resolves with `resolve` and refuses unless every address
 * is public (or `allowPrivate`). Follows dns.lookup's contract, with and without `all`.
 */
export function safeLookup(resolve: Resolver, allowPrivate: boolean) {
  return (host: string, options: dns.LookupOptions | number | LookupCallback, cb?: LookupCallback): void => {
    const callback = (typeof options === 'function' ? options : cb)!;
    const opts: dns.LookupOptions = typeof options === 'object' ? options : typeof options === 'number' ? { family: options } : {};
    resolve(host).then(
      (found) => {
        let addresses = found.filter((a) => net.isIP(a) !== 0);
        if (opts.family === 4 || opts.family === 6) addresses = addresses.filter((a) => net.isIP(a) === opts.family);
        if (addresses.length === 0) return callback(Object.assign(new Error(`webhook host ${host} does not resolve`), { code: 'ENOTFOUND' }), '');
        const bad = allowPrivate ? undefined : addresses.find((a) => !isPublicAddress(a));
        if (bad) return callback(new RefusedAddressError(`refused: webhook host ${host} resolves to a ${addressProblem(bad)}`), '');
        if (opts.all) return callback(null, addresses.map((address) => ({ address, family: net.isIP(address) })));
        callback(null, addresses[0]!, net.isIP(addresses[0]!));
      },
      (err: NodeJS.ErrnoException) => callback(err, ''),
    );
  };
}

/** The URL's host without IPv6 brackets. */
export const hostOf = (u: URL): string => u.hostname.replace(/^\[|\]$/g, '');
