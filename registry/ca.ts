import { readFileSync } from 'node:fs';

/**
 * The CA certificate(s) that sign the broker's TLS certificate (`MQTT_CA_FILE`, PEM), trusted in
 * addition to the system's for mqtts:// connections; undefined when not configured. A file that
 * cannot be read or holds no certificate stops start-up with one line naming it.
 */
export function readBrokerCa(path: string | undefined): Buffer | undefined {
  if (!path) return undefined;
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (err) {
    throw new Error(`MQTT_CA_FILE ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`MQTT_CA_FILE ${path} holds no PEM certificate`);
  return pem;
}
