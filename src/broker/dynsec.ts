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

export async function connectBrokerAdmin(url: string, username: string, password: string): Promise<BrokerAdmin> {
  const client: MqttClient = await mqtt.connectAsync(url, { username, password, clientId: `tagwatch-admin-${randomUUID().slice(0, 8)}`, reconnectPeriod: 1000 });
  await client.subscribeAsync(`${CONTROL}/response`, { qos: 1 });
  const waiting: Array<{ resolve: (r: Array<{ command: string; error?: string }>) => void }> = [];
  client.on('message', (_topic, payload) => {
    const w = waiting.shift();
    if (w) w.resolve((JSON.parse(payload.toString()) as { responses: Array<{ command: string; error?: string }> }).responses);
  });
  // commands are answered in order on one connection; one batch at a time keeps that simple
  let chain: Promise<unknown> = Promise.resolve();
  const send = (commands: DynsecCommand[], tolerate: string[] = []): Promise<void> => {
    const run = chain.then(
      () =>
        new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('broker admin: no answer from the dynamic-security plugin')), 10_000);
          waiting.push({
            resolve: (responses) => {
              clearTimeout(timer);
              const bad = responses.find((r) => r.error && !tolerate.some((t) => r.error!.includes(t)));
              if (bad) reject(new Error(`broker admin: ${bad.command}: ${bad.error}`));
              else resolve();
            },
          });
          client.publish(CONTROL, JSON.stringify({ commands }), { qos: 1 });
        }),
    );
    chain = run.catch(() => undefined);
    return run;
  };
  return {
    provisionDevice: (id, password) => send(deviceCommands(id, password)),
    setDeviceEnabled: (id, enabled) => send([{ command: enabled ? 'enableClient' : 'disableClient', username: id }]),
    async ensureServiceClient(username, password) {
      await send(serviceCommands(username, password), ['already exists']);
      await send([{ command: 'setClientPassword', username, password }]);
    },
    close: () => client.endAsync(),
  };
}
