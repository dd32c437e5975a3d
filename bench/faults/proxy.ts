import net from 'node:net';

/**
 * A TCP relay on loopback between one part of the service and PostgreSQL, which the fault
 * suite can partition: while partitioned, nothing is relayed in either direction and new
 * connections are held unanswered (no reset: to the client it looks like a network that drops
 * every packet); when healed, whatever was held flows again.
 */
export interface PartitionableProxy {
  port: number;
  partition(): void;
  heal(): void;
  close(): Promise<void>;
}

export async function startProxy(targetPort: number): Promise<PartitionableProxy> {
  let cut = false;
  const pairs = new Set<[net.Socket, net.Socket]>();
  const held: net.Socket[] = [];
  const join = (client: net.Socket) => {
    const upstream = net.connect({ host: '127.0.0.1', port: targetPort });
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    const end = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
    if (cut) {
      client.pause();
      upstream.pause();
    }
  };
  const server = net.createServer((client) => {
    client.on('error', () => client.destroy());
    if (cut) {
      client.pause();
      held.push(client);
    } else join(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    partition() {
      cut = true;
      for (const [a, b] of pairs) {
        a.pause();
        b.pause();
      }
    },
    heal() {
      cut = false;
      for (const [a, b] of pairs) {
        a.resume();
        b.resume();
      }
      for (const c of held.splice(0)) {
        if (!c.destroyed) {
          join(c);
          c.resume();
        }
      }
    },
    close: async () => {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      for (const c of held) c.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
