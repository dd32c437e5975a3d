import { randomUUID } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';

/**
 * Device identity at the broker (contract §1): Mosquitto's dynamic-security plugin,
 * administered over MQTT (`$CONTROL/dynamic-security/v1`) with the service's own admin
 * credentials. Each device is a client (username = device id) with a role of its own that may
 * publish only under `tags/v1/{id}/` and subscribe to nothing (the plugin's default denies).
 * A device client carries the text name DEVICE_TEXTNAME, which only this service gives: a client
 * without it (the admin, ingest, a bridge someone configured) is never changed as a device.
 */

/** The dynsec `textname` that marks a client this service created as a device. */
export const DEVICE_TEXTNAME = 'tagwatch device';

/** The broker already holds a client by this name that is not one of this service's devices. */
export class NotADeviceError extends Error {}

const CONTROL = '$CONTROL/dynamic-security/v1';

export interface DynsecCommand {
  command: string;
  [k: string]: unknown;
}

export interface BrokerAdmin {
  /** the service's own broker accounts (admin, ingest): never a device id */
  readonly serviceAccounts: readonly string[];
  /** creates the device or renews its password; throws NotADeviceError for a client that is not a device */
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
    { command: 'createClient', username: deviceId, clientid: deviceId, password, textname: DEVICE_TEXTNAME, roles: [{ rolename: role }] },
  ];
}

interface ClientInfo {
  textname?: string;
  roles?: Array<{ rolename: string }>;
}

/** A client is one of this service's devices when it has the device mark and the device's own role. */
export function isDeviceClient(deviceId: string, c: ClientInfo): boolean {
  return c.textname === DEVICE_TEXTNAME && (c.roles ?? []).some((r) => r.rolename === `device-${deviceId}`);
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

type Response = { command: string; error?: string; correlationData?: string; data?: { client?: ClientInfo; role?: { acls?: Array<{ acltype: string; topic: string; allow: boolean }> } } };

export interface BrokerAdminOptions {
  /** the service's other broker accounts (ingest), refused as device ids like the admin itself */
  serviceUsernames?: Array<string | undefined>;
  /** PEM of the CA that signed the broker's certificate, for an mqtts:// URL with a private CA */
  ca?: Buffer;
}

export async function connectBrokerAdmin(url: string, username: string, password: string, opts: BrokerAdminOptions = {}): Promise<BrokerAdmin> {
  const client: MqttClient = await mqtt.connectAsync(url, {
    username,
    password,
    clientId: `tagwatch-admin-${randomUUID().slice(0, 8)}`,
    reconnectPeriod: 1000,
    ...(opts.ca ? { ca: opts.ca } : {}),
  });
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
  const serviceAccounts = [username, ...(opts.serviceUsernames ?? []).filter((u): u is string => !!u)];
  /** the client's dynsec record, or null when the broker has no client by that name */
  const getClient = async (name: string): Promise<ClientInfo | null> => {
    const [r] = await send([{ command: 'getClient', username: name }], ['not found']);
    return r?.error ? null : (r?.data?.client ?? {});
  };
  const requireDevice = async (id: string): Promise<boolean> => {
    if (serviceAccounts.includes(id)) throw new NotADeviceError(`${id} is one of the service's broker accounts, not a device`);
    const existing = await getClient(id);
    if (existing && !isDeviceClient(id, existing)) throw new NotADeviceError(`the broker client ${id} is not a device (tagwatch did not create it as one)`);
    return existing !== null;
  };
  const isDeviceRole = async (id: string): Promise<boolean> => {
    const [r] = await send([{ command: 'getRole', rolename: `device-${id}` }], ['not found']);
    const acls = (r?.data?.role?.acls ?? []).map((a) => `${a.acltype} ${a.topic} ${a.allow}`);
    return acls.length === 1 && acls[0] === `publishClientSend tags/v1/${id}/# true`;
  };
  return {
    serviceAccounts,
    // idempotent: a device known to the broker but not to the database (a registration whose
    // commit failed, a restored database) is brought back to the state registration expects;
    // any other client by that name is left exactly as it is
    async provisionDevice(id, pw) {
      if (!(await requireDevice(id))) {
        const [createRole, createClient] = deviceCommands(id, pw);
        const [role] = await send([createRole!], ['already exists']);
        // a role by the device's name that grants anything else (made by someone else) is refused;
        // one left by an earlier registration that failed half-way is the device's own
        if (role?.error && !(await isDeviceRole(id))) throw new NotADeviceError(`the broker role device-${id} exists and was not created for this device`);
        const [client] = await send([createClient!], ['already exists']);
        if (!client?.error) return;
        // created meanwhile by someone else: renew it only if it is this device
        if (!(await requireDevice(id))) throw new Error(`broker admin: createClient ${id}: ${client.error}`);
      }
      // the client is this device (its role was created with it): renew the password
      await send([
        { command: 'setClientPassword', username: id, password: pw },
        { command: 'enableClient', username: id },
      ]);
    },
    async setDeviceEnabled(id, enabled) {
      if (!(await requireDevice(id))) return;
      await send([{ command: enabled ? 'enableClient' : 'disableClient', username: id }]);
    },
    async ensureServiceClient(user, pw) {
      const [, client] = await send(serviceCommands(user, pw), ['already exists']);
      if (client?.error) await send([{ command: 'setClientPassword', username: user, password: pw }]);
    },
    close: () => client.endAsync(),
  };
}

/**
 * The same administration on several brokers (MQTT_URL a list): every operation runs on each,
 * and fails when it fails on any (each is idempotent, so a retry completes the others).
 */
export async function connectBrokerAdmins(urls: string[], username: string, password: string, opts: BrokerAdminOptions = {}): Promise<BrokerAdmin> {
  const admins: BrokerAdmin[] = [];
  try {
    for (const url of urls) admins.push(await connectBrokerAdmin(url, username, password, opts));
  } catch (err) {
    await Promise.all(admins.map((a) => a.close().catch(() => undefined)));
    throw err;
  }
  if (admins.length === 1) return admins[0]!;
  const onEach = async (f: (a: BrokerAdmin) => Promise<void>) => {
    const results = await Promise.allSettled(admins.map(f));
    const failed = results.findIndex((r) => r.status === 'rejected');
    if (failed >= 0) {
      const reason = (results[failed] as PromiseRejectedResult).reason as Error;
      // a device refused as not ours on one broker is refused everywhere (same error class)
      if (reason instanceof NotADeviceError) throw reason;
      throw new Error(`broker ${failed + 1} of ${admins.length}: ${reason.message}`);
    }
  };
  return {
    serviceAccounts: admins[0]!.serviceAccounts,
    provisionDevice: (id, pw) => onEach((a) => a.provisionDevice(id, pw)),
    setDeviceEnabled: (id, enabled) => onEach((a) => a.setDeviceEnabled(id, enabled)),
    ensureServiceClient: (user, pw) => onEach((a) => a.ensureServiceClient(user, pw)),
    close: () => onEach((a) => a.close()),
  };
}
