/**
 * The live alert inbox: listens to /console/alerts/stream (EventSource; the session cookie goes
 * with it) and, for each event, fetches the alert's row as the server renders it
 * (/console/alerts/:id/row): a new alert goes to the top of the table (on the first page), a
 * changed one is replaced in place; each is announced in the page's aria-live region, e.g.
 * "New high alert: Entered an exclusion zone, Frank Example". Without JavaScript the page is the
 * plain list.
 */
interface PageData {
  stream: string;
  page: number;
}
interface StreamEvent {
  id: string;
  action: string;
  alert: { id: string; status: string; severity: string };
}

const ACTION_WORDS: Record<string, string> = {
  acknowledged: 'Alert acknowledged',
  resolved: 'Alert resolved',
  auto_resolved: 'Alert resolved automatically',
  escalated: 'Alert escalated',
  recurred: 'Alert happened again',
  reviewed: 'Alert reviewed',
};

const dataEl = document.getElementById('inbox-live-data');
const table = document.querySelector<HTMLTableElement>('table[data-testid="inbox"]');
const announcer = document.getElementById('inbox-announce');
const state = document.getElementById('inbox-live-state');

if (dataEl && table && announcer && typeof EventSource === 'function') {
  const data = JSON.parse(dataEl.textContent ?? '{}') as PageData;
  const body = table.tBodies[0]!;
  /** the newest announcements stay readable; each is also said by a screen reader (role=status) */
  const announce = (text: string) => {
    announcer.textContent = text;
  };
  const setState = (text: string) => {
    if (!state) return;
    state.hidden = false;
    state.textContent = text;
  };

  const rowOf = async (alertId: string): Promise<HTMLTableRowElement | null> => {
    const res = await fetch(`/console/alerts/${encodeURIComponent(alertId)}/row`, { credentials: 'same-origin', headers: { accept: 'text/html' } });
    if (!res.ok) return null;
    const tpl = document.createElement('template');
    tpl.innerHTML = (await res.text()).trim(); // server-rendered (autoescaped) HTML of one row; no script runs from a template
    const tbody = document.createElement('tbody');
    tbody.append(tpl.content);
    return tbody.querySelector('tr');
  };

  // events are handled one at a time, in order
  let queue: Promise<void> = Promise.resolve();
  const handle = async (e: StreamEvent) => {
    const existing = body.querySelector<HTMLTableRowElement>(`tr[data-alert-id="${CSS.escape(e.alert.id)}"]`);
    if (e.action === 'raised' && existing) return; // already listed (a replayed event)
    if (e.action !== 'raised' && !existing) return; // not on this page
    const row = await rowOf(e.alert.id);
    if (!row) return;
    const label = row.dataset.label ?? '';
    if (existing) {
      existing.replaceWith(row);
      announce(`${ACTION_WORDS[e.action] ?? 'Alert changed'}: ${label}`);
      return;
    }
    announce(`New ${row.dataset.severity ?? ''} alert: ${label}`);
    if (data.page !== 1) return; // newest go on the first page
    row.classList.add('console-row--new');
    body.prepend(row);
    table.hidden = false;
    document.getElementById('inbox-empty')?.setAttribute('hidden', '');
  };

  const source = new EventSource(data.stream);
  source.addEventListener('open', () => {
    setState('Live updates are on: new alerts appear at the top without reloading.');
    table.dataset.live = 'true';
  });
  source.addEventListener('alert', (m) => {
    const e = JSON.parse((m as MessageEvent<string>).data) as StreamEvent;
    queue = queue.then(() => handle(e)).catch(() => undefined);
  });
  source.addEventListener('expired', () => {
    source.close();
    setState('Live updates have stopped because your session ended. Reload the page to sign in again.');
  });
  source.addEventListener('error', () => {
    if (source.readyState === EventSource.CLOSED) setState('Live updates have stopped. Reload the page to start them again.');
    else setState('Live updates are reconnecting…');
  });
}
