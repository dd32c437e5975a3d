/**
 * The batch page while matching runs: polls the session's progress endpoint every 2 s and
 * updates the progress line (announced politely); reloads the page once the run has finished so
 * the crimes show their counts. Without JavaScript the page has a "Refresh the progress" link.
 */
import { pageData } from '../map.js';

interface Progress { run: { id: string; status: string; crimes_done: number; crimes_total: number; params_version: string; finished: boolean } | null }

const line = document.querySelector<HTMLElement>('[data-testid="progress"]');
if (line && document.getElementById('crime-batch-data')) {
  const { progress } = pageData<{ progress: string }>('crime-batch-data');
  const tick = async (): Promise<void> => {
    const res = await fetch(progress, { credentials: 'same-origin', headers: { accept: 'application/json' } });
    if (!res.ok) return;
    const p = (await res.json()) as Progress;
    if (!p.run) return;
    const status = p.run.status.charAt(0).toUpperCase() + p.run.status.slice(1);
    line.textContent = `Run ${p.run.id}: ${status}, ${p.run.crimes_done} of ${p.run.crimes_total} crimes matched (parameters version ${p.run.params_version}).`;
    if (p.run.finished) window.location.reload();
    else window.setTimeout(() => void tick(), 2000);
  };
  window.setTimeout(() => void tick(), 1000);
}
