/**
 * The subject page's map and replay: the live zones and the latest position with its error
 * circle; the chosen period's track (fetched from /console/subjects/{id}/track) drawn as a line
 * with points; a replay driven by requestAnimationFrame. Playback time advances by real time ×
 * speed; each frame moves the one highlighted fix (never rebuilding the track's features).
 * Marks for the benchmark (Performance API): `tagwatch:track-requested`, `tagwatch:track-loaded`
 * (answer parsed) and `tagwatch:track-drawn` once the map has drawn the track.
 */
import Feature from 'ol/Feature.js';
import type OlMap from 'ol/Map.js';
import Point from 'ol/geom/Point.js';
import { fromLonLat } from 'ol/proj.js';
import { createMap, geodesicCircle, pageData, zoneFeature, type Zone } from '../map.js';
import { fixAt, Highlight, LATEST_CENTRE, LATEST_STYLE, timeFormatter, trackFeatures, type TrackColumns } from '../subject.js';

interface Data {
  latest: { ts: string; lon: number; lat: number; accuracy_m: number } | null;
  zones: Zone[];
  track: string | null;
  timezone: string;
  reason: string | null;
}

const el = document.getElementById('subject-map');
if (el) void start(el);

async function start(el: HTMLElement): Promise<void> {
  const data = pageData<Data>('subject-map-data');
  // the track request first (the page preloads it for a manager: this fetch takes that response), the map meanwhile
  performance.mark('tagwatch:track-requested');
  const answer = data.track ? fetch(data.track, { credentials: 'same-origin', headers: data.reason ? { 'x-tagwatch-reason': encodeURIComponent(data.reason) } : {} }) : null;
  const m = createMap(el, { image: true });
  for (const z of data.zones) m.source.addFeature(zoneFeature(z));
  if (data.latest) {
    const circle = new Feature(geodesicCircle(data.latest.lon, data.latest.lat, data.latest.accuracy_m));
    circle.setStyle(LATEST_STYLE);
    const centre = new Feature(new Point(fromLonLat([data.latest.lon, data.latest.lat])));
    centre.setStyle(LATEST_CENTRE);
    m.source.addFeatures([circle, centre]);
  }
  const status = document.getElementById('replay-status');
  const say = (text: string) => {
    if (status) status.textContent = text;
  };

  let track: TrackColumns | null = null;
  if (answer) {
    say('Loading the track…');
    const res = await answer;
    if (res.ok) track = (await res.json()) as TrackColumns;
    else say(`The track could not be loaded (${res.status}). Reload the page to try again.`);
    performance.mark('tagwatch:track-loaded');
  }
  if (track && track.count > 0) m.source.addFeatures(trackFeatures(track));
  m.fit();
  performance.mark('tagwatch:track-added');
  m.map.once('rendercomplete', () => {
    performance.mark('tagwatch:track-drawn');
    el.dataset.ready = 'true';
  });
  if (!track) return;
  if (track.count === 0) {
    say('No locations were recorded in this period.');
    return;
  }
  replay(el, m.map, track, data.timezone);
}

function replay(el: HTMLElement, map: OlMap, t: TrackColumns, timezone: string): void {
  const controls = document.getElementById('replay');
  const slider = document.getElementById('replay-position') as HTMLInputElement | null;
  const play = document.getElementById('replay-play') as HTMLButtonElement | null;
  const speedSelect = document.getElementById('replay-speed') as HTMLSelectElement | null;
  const status = document.getElementById('replay-status');
  if (!controls || !slider || !play || !speedSelect || !status) return;
  const when = timeFormatter(timezone);
  const highlight = new Highlight(map, t);
  const n = t.count;
  slider.min = '0';
  slider.max = String(n - 1);
  slider.value = '0';
  controls.hidden = false;

  let index = 0;
  /** playback position, epoch ms of device time */
  let playT = t.ts[0]!;
  let playing = false;
  let lastFrame = 0;
  let lastSaid = 0;

  const announce = (i: number) => {
    const time = document.createElement('time');
    time.dateTime = new Date(t.ts[i]!).toISOString();
    time.textContent = when(t.ts[i]!);
    status.replaceChildren(
      `Fix ${(i + 1).toLocaleString('en-GB')} of ${n.toLocaleString('en-GB')}${t.truncated ? ' (the period has more: choose a shorter one)' : ''}: `,
      time,
      ` (device time), accuracy ${Math.round(t.accuracy_m[i]!)} m, position ${t.lat[i]!.toFixed(5)}, ${t.lon[i]!.toFixed(5)}`,
    );
    status.dataset.index = String(i);
  };
  const show = (i: number, fromSlider: boolean) => {
    index = i;
    highlight.show(i);
    // which fix the map highlights (read by the browser test; one attribute, when it changes)
    el.dataset.highlighted = String(i);
    if (!fromSlider) slider.value = String(i);
    slider.setAttribute('aria-valuetext', when(t.ts[i]!));
  };
  const setPlaying = (on: boolean) => {
    playing = on;
    play.textContent = on ? 'Pause' : 'Play';
    play.setAttribute('aria-pressed', on ? 'true' : 'false');
    // while playing, the text changes once a second (a screen reader is not flooded); paused, at once
    status.setAttribute('aria-live', on ? 'off' : 'polite');
    if (on) {
      if (index >= n - 1) show(0, false);
      playT = t.ts[index]!;
      lastFrame = 0;
      requestAnimationFrame(frame);
    } else announce(index);
  };
  const frame = (now: number) => {
    if (!playing) return;
    if (lastFrame) playT += (now - lastFrame) * Number(speedSelect.value);
    lastFrame = now;
    const i = fixAt(t.ts, playT);
    if (i !== index) show(i, false);
    if (now - lastSaid >= 1000) {
      lastSaid = now;
      announce(i);
    }
    if (i >= n - 1) return setPlaying(false);
    requestAnimationFrame(frame);
  };

  slider.addEventListener('input', () => {
    const i = Number(slider.value);
    show(i, true);
    playT = t.ts[i]!;
    announce(i);
  });
  play.addEventListener('click', () => setPlaying(!playing));
  show(0, false);
  announce(0);
}
