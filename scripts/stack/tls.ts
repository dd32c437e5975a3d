import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * A private CA and a server certificate for the broker's MQTT-over-TLS listener, made with
 * openssl: for the local stack (`stack:up`, into .stack/tls/), the test brokers, and a first
 * docker-compose trial (`tsx scripts/stack/tls.ts deploy/tls mosquitto broker.example`). A real
 * deployment should use a certificate from the force's own PKI instead.
 * Keys are written 0600; certificates 0644 (the broker and the clients read them).
 */

export interface TlsFiles {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
}

export function tlsFiles(dir: string): TlsFiles {
  return { dir, caFile: join(dir, 'ca.crt'), certFile: join(dir, 'server.crt'), keyFile: join(dir, 'server.key') };
}

/** days a certificate made here is valid */
const DAYS = 825;

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * Makes the CA and a server certificate for `names` (host names and IP addresses, first one the
 * subject) unless they exist and the certificate is valid for another day. Idempotent.
 */
export function ensureCertificates(dir: string, names: string[] = ['localhost', '127.0.0.1']): TlsFiles {
  const f = tlsFiles(dir);
  const caKey = join(dir, 'ca.key');
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  if (existsSync(f.caFile) && existsSync(f.certFile) && existsSync(f.keyFile) && validForADay(f.certFile)) {
    for (const key of [caKey, f.keyFile]) if (existsSync(key)) chmodSync(key, 0o600);
    return f;
  }
  if (!existsSync(f.caFile) || !existsSync(caKey) || !validForADay(f.caFile)) {
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', caKey, '-out', f.caFile, '-days', String(DAYS), '-subj', '/CN=tagwatch local CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  }
  const csr = join(dir, 'server.csr');
  const ext = join(dir, 'server.ext');
  const san = names.map((n) => (isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
  writeFileSync(ext, `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f.keyFile, '-out', csr, '-subj', `/CN=${names[0]}`]);
  openssl(['x509', '-req', '-in', csr, '-CA', f.caFile, '-CAkey', caKey, '-CAcreateserial', '-out', f.certFile, '-days', String(DAYS), '-extfile', ext]);
  rmSync(csr, { force: true });
  rmSync(ext, { force: true });
  for (const key of [caKey, f.keyFile]) chmodSync(key, 0o600);
  for (const crt of [f.caFile, f.certFile]) chmodSync(crt, 0o644);
  return f;
}

function validForADay(certFile: string): boolean {
  try {
    openssl(['x509', '-checkend', '86400', '-noout', '-in', certFile]);
    return true;
  } catch {
    return false;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [dir, ...names] = process.argv.slice(2);
  if (!dir) {
    console.error('usage: tsx scripts/stack/tls.ts DIR [NAME...]   (names: host names or IP addresses the broker is reached by)');
    process.exit(2);
  }
  const f = ensureCertificates(dir, names.length ? names : ['localhost', '127.0.0.1']);
  console.log(`CA ${f.caFile}, server certificate ${f.certFile}, key ${f.keyFile} (0600)`);
}
