import { randomUUID } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';

/**
 * Device identity at the broker (contract §1): Mosquitto's dynamic-security plugin,
 * administered over MQTT (`$CONTROL/dynamic-security/v1`) with the service's own admin
 * credentials. Each device is a client (username = device id) with a role of its own that may
 * publish only under `tags/v1/{id}/` and subscribe to nothing (the plugin's default denies).
 */

const CONTROL = '$CONTROL/dynamic-security/v1';

export interface DynsecCommand {
  command: string;
  [k: string]: unknown;
}

export interface BrokerAdmin {
  provisionDevice(deviceId: string, password: string): Promise<void>;
  setDeviceEnabled(deviceId: string, enabled: boolean): Promise<void>;
  ensureServiceClient(username: string, password: string): Promise<void>;
  close(): Promise<void>;
}

/** Roles and ACLs of a device: publish under its own topic only. */
export function deviceCommands(deviceId: string, password: string): DynsecCommand[] {
  const role = `device-${deviceId}`;
  return [
    { command: 'createRole', rolename: role, acls: [{ acltype: 'publishClientSend', topic: `tags/v1/${deviceId}/#`, priority: 0, allow: true }] },
    { command: 'createClient', username: deviceId, clientid: deviceId, password, roles: [{ rolename: role }] },
  ];
}

/** The ingest service's client: may subscribe to all telemetry, shared or not. */
export function serviceCommands(username: string, password: string): DynsecCommand[] {
  return [
    {
      command: 'createRole',
      rolename: 'tagwatch-ingest',
      acls: [
        { acltype: 'subscribePattern', topic: 'tags/v1/#', priority: 0, allow: true },
        { acltype: 'subscribePattern', topic: '$share/+/tags/v1/#', priority: 0, allow: true },
      ],
    },
    { command: 'createClient', username, password, roles: [{ rolename: 'tagwatch-ingest' }] },
  ];
}

type Response = { command: string; error?: string; correlationData?: string };

export async function connectBrokerAdmin(url: string, username: string, password: string): Promise<BrokerAdmin> {
  const client: MqttClient = await mqtt.connectAsync(url, { username, password, clientId: `tagwatch-admin-${randomUUID().slice(0, 8)}`, reconnectPeriod: 1000 });
  await client.subscribeAsync(`${CONTROL}/response`, { qos: 1 });
  // each command carries a correlation id that the plugin echoes in its response
  const waiting = new Map<string, (r: Response) => void>();
  client.on('message', (_topic, payload) => {
    for (const r of (JSON.parse(payload.toString()) as { responses: Response[] }).responses ?? []) {
      const w = r.correlationData ? waiting.get(r.correlationData) : undefined;
      if (w) w(r);
    }
  });
  const send = async (commands: DynsecCommand[], tolerate: string[] = []): Promise<Response[]> => {
    const tagged = commands.map((c) => ({ ...c, correlationData: randomUUID() }));
    const answers = tagged.map(
      (c) =>
        new Promise<Response>((resolve, reject) => {
          const timer = setTimeout(() => {
            waiting.delete(c.correlationData);
            reject(new Error(`broker admin: no answer to ${c.command} from the dynamic-security plugin`));
          }, 10_000);
          waiting.set(c.correlationData, (r) => {
            clearTimeout(timer);
            waiting.delete(c.correlationData);
            resolve(r);
          });
        }),
    );
    await client.publishAsync(CONTROL, JSON.stringify({ commands: tagged }), { qos: 1 });
    const responses = await Promise.all(answers);
    for (const r of responses) {
      if (r.error && !tolerate.some((t) => r.error!.includes(t))) throw new Error(`broker admin: ${r.command}: ${r.error}`);
    }
    return responses;
  };
  return {
    // idempotent: a device known to the broker but not to the database (a registration whose
    // commit failed, a restored database) is brought back to the state registration expects
    async provisionDevice(id, pw) {
      const [, client] = await send(deviceCommands(id, pw), ['already exists']);
      if (!client?.error) return;
      // the client existed: its role is the device's own (created with it); renew the password
      await send([
        { command: 'setClientPassword', username: id, password: pw },
        { command: 'enableClient', username: id },
      ]);
    },
    async setDeviceEnabled(id, enabled) {
      await send([{ command: enabled ? 'enableClient' : 'disableClient', username: id }]);
    },
    async ensureServiceClient(user, pw) {
      const [, client] = await send(serviceCommands(user, pw), ['already exists']);
      if (client?.error) await send([{ command: 'setClientPassword', username: user, password: pw }]);
    },
    close: () => client.endAsync(),
  };
}
