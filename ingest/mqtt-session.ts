import net from 'node:net';
import tls from 'node:tls';
import mqttPacket, { type IConnackPacket, type IPublishPacket, type ISubackPacket, type Packet } from 'mqtt-packet';

/**
 * One persistent MQTT 5 session that subscribes at QoS 1 and acknowledges each message only when
 * told to (`InboundMessage.ack`), built on `mqtt-packet` (the parser/generator MQTT.js itself
 * uses) over TCP or TLS. Unlike MQTT.js, which hands a connection its next message only after
 * the previous one's PUBACK, it keeps up to `receiveMaximum` messages unacknowledged (MQTT 5
 * Receive Maximum: the broker sends no more than that), and writes the PUBACKs that are due in
 * one socket write. PUBACKs leave in the order the PUBLISHes arrived (MQTT 3.1.1 and 5, §4.6:
 * "MUST send PUBACK packets in the order in which the corresponding PUBLISH packets were
 * received"): an acknowledged message waits for every earlier one of its connection.
 */

export interface InboundMessage {
  topic: string;
  payload: Buffer;
  /** the message is committed: its PUBACK may go (in order); a no-op once its connection is gone */
  ack(): void;
}

export interface SessionOptions {
  /** mqtt://, tcp:// (TCP) or mqtts://, ssl:// (TLS); credentials may also come in the URL */
  url: string;
  clientId: string;
  /** PEM CA certificate(s) trusted for a TLS broker, besides the system's */
  ca?: Buffer;
  username?: string;
  password?: string;
  /** topic filter subscribed at QoS 1 */
  filter: string;
  /** a filter this session may hold from an earlier configuration, unsubscribed after subscribing */
  drop?: string;
  /** most unacknowledged messages the broker may send this session (MQTT 5 Receive Maximum, 1..65535) */
  receiveMaximum: number;
  /** largest packet the broker may send this session, bytes (MQTT 5 Maximum Packet Size); unset: no limit */
  maximumPacketSize?: number;
  /** seconds */
  keepalive: number;
  /** seconds the broker keeps the session (and queues QoS 1 messages) after a disconnect */
  sessionExpiry: number;
  onMessage(msg: InboundMessage): void;
  /** subscribed (true) or connection lost (false) */
  onState(up: boolean): void;
  onError(err: Error, fatal: boolean): void;
}

const PROTOCOL = { protocolVersion: 5 } as const;
const CONNACK_TIMEOUT_MS = 10_000;
const BACKOFF_MS = { first: 100, max: 5000 };
/** CONNACK reasons that retrying cannot fix (MQTT 5 §3.2.2.2): bad credentials, not authorised, banned, bad client id */
const FATAL_CONNACK = new Set([0x85, 0x86, 0x87, 0x8a, 0x8c]);

interface AckSlot {
  messageId: number;
  committed: boolean;
}

/** Parses an MQTT URL into socket options; WebSocket URLs are refused (ingest speaks MQTT over TCP/TLS). */
export function brokerAddress(url: string): { tls: boolean; host: string; port: number; username?: string; password?: string } {
  const u = new URL(url);
  const secure = u.protocol === 'mqtts:' || u.protocol === 'ssl:' || u.protocol === 'tls:';
  if (!secure && u.protocol !== 'mqtt:' && u.protocol !== 'tcp:') {
    throw new Error(`MQTT_URL: ingest connects over TCP or TLS (mqtt://, mqtts://), not ${u.protocol}//`);
  }
  return {
    tls: secure,
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port ? Number(u.port) : secure ? 8883 : 1883,
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
  };
}

export function createMqttSession(opts: SessionOptions) {
  const addr = brokerAddress(opts.url);
  const username = opts.username ?? addr.username;
  const password = opts.password ?? addr.password;
  let socket: net.Socket | null = null;
  /** bumped on every connection, so acks of messages from a lost connection go nowhere */
  let generation = 0;
  let acks: AckSlot[] = [];
  let ackHead = 0;
  let flushScheduled = false;
  /** CONNACK accepted on the current connection: PUBACKs may go (redeliveries can precede the SUBACK) */
  let established = false;
  let up = false;
  let everUp = false;
  let stopped = false;
  let paused = false;
  let attempt = 0;
  let reconnectTimer: NodeJS.Timeout | null = null;
  let keepaliveTimer: NodeJS.Timeout | null = null;
  let connackTimer: NodeJS.Timeout | null = null;
  let lastSentAt = 0;
  let pingSentAt = 0;
  let firstUp: { resolve: () => void; reject: (e: Error) => void } | null = null;

  function send(s: net.Socket, packet: Packet): void {
    lastSentAt = Date.now();
    s.write(mqttPacket.generate(packet, PROTOCOL));
  }

  function connect(): void {
    const gen = ++generation;
    acks = [];
    ackHead = 0;
    const s = addr.tls
      ? tls.connect({ host: addr.host, port: addr.port, servername: net.isIP(addr.host) ? undefined : addr.host, ...(opts.ca ? { ca: opts.ca } : {}) })
      : net.connect({ host: addr.host, port: addr.port });
    socket = s;
    s.setNoDelay(true);
    if (paused) s.pause();
    const parser = mqttPacket.parser(PROTOCOL);
    parser.on('packet', (p: Packet) => gen === generation && onPacket(s, p));
    parser.on('error', (err: Error) => fail(s, err, false));
    s.on('data', (buf: Buffer) => parser.parse(buf));
    s.once(addr.tls ? 'secureConnect' : 'connect', () => {
      send(s, {
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 5,
        clientId: opts.clientId,
        clean: false,
        keepalive: opts.keepalive,
        username,
        password: password === undefined ? undefined : Buffer.from(password),
        properties: {
          sessionExpiryInterval: opts.sessionExpiry,
          receiveMaximum: opts.receiveMaximum,
          ...(opts.maximumPacketSize ? { maximumPacketSize: opts.maximumPacketSize } : {}),
        },
      });
    });
    s.on('error', (err) => fail(s, err, false));
    s.on('close', () => onClose(s));
    connackTimer = setTimeout(() => fail(s, new Error(`no CONNACK within ${CONNACK_TIMEOUT_MS / 1000} s`), false), CONNACK_TIMEOUT_MS);
  }

  function onPacket(s: net.Socket, p: Packet): void {
    switch (p.cmd) {
      case 'publish':
        return onPublish(p);
      case 'connack':
        return onConnack(s, p);
      case 'suback':
        return onSuback(s, p);
      case 'pingresp':
        pingSentAt = 0;
        return;
      case 'disconnect':
        return fail(s, new Error(`broker disconnected the session (reason 0x${(p.reasonCode ?? 0).toString(16)})`), false);
      default:
        return;
    }
  }

  function onConnack(s: net.Socket, p: IConnackPacket): void {
    if (connackTimer) clearTimeout(connackTimer);
    connackTimer = null;
    const code = p.reasonCode ?? p.returnCode ?? 0;
    if (code !== 0) {
      fail(s, new Error(`broker refused the connection of ${opts.clientId} (reason 0x${code.toString(16)})`), FATAL_CONNACK.has(code));
      return;
    }
    established = true;
    // Subscribing again is harmless when the session was present, and restores it when not.
    send(s, { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: opts.filter, qos: 1 }] });
    // its UNSUBACK needs nothing (0x11, no subscription existed, is the usual answer)
    if (opts.drop) send(s, { cmd: 'unsubscribe', messageId: 2, unsubscriptions: [opts.drop] });
    const period = (opts.keepalive * 1000) / 2;
    keepaliveTimer = setInterval(() => keepalive(s), Math.max(50, period / 2));
  }

  function onSuback(s: net.Socket, p: ISubackPacket): void {
    const granted = p.granted[0];
    if (granted !== 1) {
      fail(s, new Error(`subscription to ${opts.filter} refused (reason ${JSON.stringify(granted)})`), true);
      return;
    }
    attempt = 0;
    up = everUp = true;
    opts.onState(true);
    firstUp?.resolve();
    firstUp = null;
  }

  function onPublish(p: IPublishPacket): void {
    const payload = Buffer.isBuffer(p.payload) ? p.payload : Buffer.from(p.payload);
    if (p.qos !== 1) {
      // QoS 0 needs no acknowledgement; QoS 2 is never granted by a QoS 1 subscription
      opts.onMessage({ topic: p.topic, payload, ack: () => undefined });
      return;
    }
    const slot: AckSlot = { messageId: p.messageId!, committed: false };
    acks.push(slot);
    const gen = generation;
    opts.onMessage({
      topic: p.topic,
      payload,
      ack: () => {
        if (gen !== generation || slot.committed) return;
        slot.committed = true;
        if (!flushScheduled) {
          flushScheduled = true;
          // a commit acknowledges many messages at once: one socket write for all of them
          setImmediate(flushAcks);
        }
      },
    });
  }

  /** Writes the PUBACKs that are due, in receipt order, as one socket write. */
  function flushAcks(): void {
    flushScheduled = false;
    const s = socket;
    if (!s || !established) return;
    const out: Buffer[] = [];
    while (ackHead < acks.length && acks[ackHead]!.committed) {
      out.push(mqttPacket.generate({ cmd: 'puback', messageId: acks[ackHead]!.messageId, reasonCode: 0 }, PROTOCOL));
      ackHead++;
    }
    if (ackHead > 1024 && ackHead * 2 > acks.length) {
      acks = acks.slice(ackHead);
      ackHead = 0;
    }
    if (out.length === 0) return;
    lastSentAt = Date.now();
    s.write(out.length === 1 ? out[0]! : Buffer.concat(out));
  }

  function keepalive(s: net.Socket): void {
    const now = Date.now();
    const keepaliveMs = opts.keepalive * 1000;
    // While intake is paused the PINGRESP waits unread in the socket: not a dead broker.
    if (pingSentAt && !paused && now - pingSentAt > keepaliveMs) {
      fail(s, new Error(`no PINGRESP within ${opts.keepalive} s`), false);
      return;
    }
    // Paused, we still say we are alive, so the broker keeps the connection.
    if ((!pingSentAt || paused) && now - lastSentAt >= keepaliveMs / 2) {
      pingSentAt ||= now;
      send(s, { cmd: 'pingreq' });
    }
  }

  function fail(s: net.Socket, err: Error, fatal: boolean): void {
    if (s !== socket) return;
    opts.onError(err, fatal);
    if (fatal && !everUp && firstUp) {
      firstUp.reject(err);
      firstUp = null;
      stopped = true;
    }
    s.destroy();
  }

  function onClose(s: net.Socket): void {
    if (s !== socket) return;
    socket = null;
    generation++; // the acks of this connection's messages are void: the broker redelivers them
    acks = [];
    ackHead = 0;
    pingSentAt = 0;
    established = false;
    if (keepaliveTimer) clearInterval(keepaliveTimer);
    if (connackTimer) clearTimeout(connackTimer);
    keepaliveTimer = connackTimer = null;
    if (up) {
      up = false;
      opts.onState(false);
    }
    if (stopped) return;
    const delay = Math.min(BACKOFF_MS.max, BACKOFF_MS.first * 2 ** Math.min(attempt++, 6));
    reconnectTimer = setTimeout(connect, delay * (0.75 + Math.random() / 2));
  }

  return {
    /** resolves once subscribed; rejects if the broker refuses this client for good (credentials, authorisation) */
    start(): Promise<void> {
      const ready = new Promise<void>((resolve, reject) => (firstUp = { resolve, reject }));
      connect();
      return ready;
    },
    /** stops reading the socket: the broker holds further messages (acks still leave) */
    pause(): void {
      paused = true;
      socket?.pause();
    },
    resume(): void {
      paused = false;
      if (pingSentAt) pingSentAt = Date.now(); // its PINGRESP may sit behind what was held back
      socket?.resume();
    },
    get up() {
      return up;
    },
    /** Sends the PUBACKs due, then DISCONNECT: the session and its unacknowledged messages stay at the broker. */
    async stop(): Promise<void> {
      stopped = true;
      if (reconnectTimer) clearTimeout(reconnectTimer);
      const s = socket;
      if (!s) return;
      flushAcks();
      const closed = new Promise<void>((r) => s.once('close', () => r()));
      if (established) send(s, { cmd: 'disconnect', reasonCode: 0 });
      s.end();
      const timer = setTimeout(() => s.destroy(), 2000);
      await closed;
      clearTimeout(timer);
    },
  };
}

export type MqttSession = ReturnType<typeof createMqttSession>;
