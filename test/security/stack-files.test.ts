import { chmodSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stackUp, STACK_DIR } from '../../scripts/stack.js';
import { startTestBroker } from '../support/env.js';
import { connectBrokerAdmin } from '../../registry/dynsec.js';
import { randomBytes } from 'node:crypto';

const mode = (file: string) => (statSync(file).mode & 0o777).toString(8);

/** Finding 17: the files holding the stack's secrets are 0600 every time, not only when first made. */
describe('secret files of the local stack', () => {
  it('makes .stack/env and dynamic-security.json 0600 again when they exist with other permissions', async () => {
    const env = join(STACK_DIR, 'env');
    const dynsec = join(STACK_DIR, 'mosquitto', 'dynamic-security.json');
    chmodSync(env, 0o644);
    chmodSync(dynsec, 0o644);
    await stackUp(() => undefined); // idempotent: the running stack is kept
    expect([mode(env), mode(dynsec)]).toEqual(['600', '600']);
  });

  it('keeps dynamic-security.json 0600 after the broker saves a change', async () => {
    const broker = await startTestBroker({ dynsec: true });
    try {
      const dir = broker.dir;
      const admin = await connectBrokerAdmin(broker.url, broker.credentials.MQTT_ADMIN_USERNAME!, broker.credentials.MQTT_ADMIN_PASSWORD!);
      await admin.ensureServiceClient('perm-check', randomBytes(12).toString('hex'));
      await admin.close();
      expect(mode(join(dir, 'dynamic-security.json'))).toBe('600');
    } finally {
      broker.stop();
    }
  });
});
