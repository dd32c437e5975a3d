/**
 * Places for live streams in this process: at most `perUser` per user and `total` in all. A
 * place is taken before the stream opens and given back once when it closes.
 */
export type SlotResult = { ok: true; release: () => void } | { ok: false; limit: 'per_user' | 'total' };

export function createStreamSlots(perUser: number, total: number) {
  const byUser = new Map<string, number>();
  let inUse = 0;
  return {
    acquire(userId: string): SlotResult {
      const mine = byUser.get(userId) ?? 0;
      if (mine >= perUser) return { ok: false, limit: 'per_user' };
      if (inUse >= total) return { ok: false, limit: 'total' };
      byUser.set(userId, mine + 1);
      inUse++;
      let released = false;
      return {
        ok: true,
        release() {
          if (released) return;
          released = true;
          inUse--;
          const left = (byUser.get(userId) ?? 1) - 1;
          if (left > 0) byUser.set(userId, left);
          else byUser.delete(userId);
        },
      };
    },
    get inUse() {
      return inUse;
    },
  };
}
