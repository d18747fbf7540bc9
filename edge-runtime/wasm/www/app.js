// The phone web app: devicemotion events → edge-runtime (wasm) → frames on screen.
// Everything numeric happens in the wasm module; this file reads events, draws, and
// keeps the session's frames for the CSV download.
import init, { Session, flag_names } from './pkg/edge_runtime_wasm.js';

const ACTIVITY_NAMES = ['', 'WALKING', 'WALKING_UPSTAIRS', 'WALKING_DOWNSTAIRS', 'SITTING', 'STANDING', 'LAYING'];
// Events must start within this long after Start, or the page says there is no sensor.
const NO_SENSOR_AFTER_MS = 2000;
const RASTER_COLUMN_PX = 8;

const $ = (id) => document.getElementById(id);
const ui = {
  start: $('start'), stop: $('stop'), csv: $('csv'), mount: $('mount'), invertAcc: $('invert-acc'),
  modelFile: $('model-file'), servedModel: $('served-model'), modelInfo: $('model-info'),
  status: $('status'), activity: $('activity'), activityScore: $('activity-score'),
  raster: $('raster'), gamma: $('gamma'), stats: $('stats'),
};

// Inspected by the browser test (frames, timings); the page never reads it back.
const state = {
  blob: null, modelName: '', latentDim: 0, session: null, listening: false,
  events: 0, eventsWithoutValues: 0, eventsWithoutGyro: 0, firstEventMs: null, lastEventMs: null,
  frames: [], encodeMs: [], error: '',
};
window.vscApp = state;
let flagNames = [];
let watchdog = null;

function say(text, isError = false) {
  ui.status.textContent = text;
  ui.status.classList.toggle('error', isError);
  if (isError) state.error = text;
}

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
const num = (v) => (v === null || v === undefined ? NaN : v);

function setModel(bytes, name) {
  let probe;
  try {
    probe = new Session(bytes, ui.mount.value);
  } catch (e) {
    say(`${name}: ${e.message}`, true);
    return false;
  }
  state.blob = bytes;
  state.modelName = name;
  state.latentDim = probe.latent_dim;
  ui.modelInfo.textContent =
    `Model ${name}: ${bytes.length} bytes, J = ${probe.latent_dim}, CRC ${probe.blob_crc.toString(16).padStart(8, '0')}`;
  probe.free();
  ui.start.disabled = state.listening;
  return true;
}

async function loadServedModel() {
  let response;
  try {
    response = await fetch('model.vscq', { cache: 'no-store' });
  } catch (e) {
    say(`Could not fetch model.vscq from the server: ${e.message}`, true);
    return;
  }
  if (!response.ok) {
    say(`The server has no model (model.vscq: HTTP ${response.status}); pick a .vscq file.`, true);
    return;
  }
  if (setModel(new Uint8Array(await response.arrayBuffer()), 'model.vscq (served)')) {
    ui.modelFile.value = '';
    say('Press Start, then wear the phone as chosen above.');
  }
}

async function loadModelFile() {
  const file = ui.modelFile.files[0];
  if (!file) return;
  if (setModel(new Uint8Array(await file.arrayBuffer()), file.name)) {
    say(`Using ${file.name}. Press Start.`);
  }
}

function noSensorCheck() {
  if (!state.listening || state.events > 0) return;
  if (state.eventsWithoutValues > 0) {
    say('This device has no accelerometer the browser can read (motion events arrive empty).', true);
  } else {
    say(`No motion events within ${NO_SENSOR_AFTER_MS / 1000} s: this device or browser has no motion sensor, ` +
      'or the page may not use it (open it as http://localhost:PORT or over HTTPS).', true);
  }
}

// Must run synchronously inside the tap: iOS grants requestPermission only with a user
// gesture, and an await before it would lose the gesture.
function start() {
  if (typeof DeviceMotionEvent === 'undefined') {
    say('This browser has no DeviceMotionEvent: there are no motion sensors for web pages here.', true);
    return;
  }
  if (!window.isSecureContext) {
    say('Motion sensors need a secure context: open the page as http://localhost:PORT ' +
      '(e.g. through adb reverse) or over HTTPS, not over a plain http:// LAN address.', true);
    return;
  }
  if (typeof DeviceMotionEvent.requestPermission === 'function') {
    DeviceMotionEvent.requestPermission().then((answer) => {
      if (answer === 'granted') {
        listen();
      } else {
        say('Motion access was denied, so there is nothing to encode. Safari may keep this answer ' +
          'for the site until it restarts; reload and tap Start to be asked again.', true);
      }
    }, (e) => say(`Could not ask for motion access: ${e.message}`, true));
  } else {
    listen();
  }
}

function listen() {
  try {
    state.session = new Session(state.blob, ui.mount.value);
  } catch (e) {
    say(e.message, true);
    return;
  }
  Object.assign(state, {
    listening: true, events: 0, eventsWithoutValues: 0, eventsWithoutGyro: 0,
    firstEventMs: null, lastEventMs: null, frames: [], encodeMs: [], error: '',
  });
  clearRaster();
  window.addEventListener('devicemotion', onMotion);
  ui.start.disabled = true;
  ui.stop.disabled = false;
  ui.mount.disabled = true;
  ui.invertAcc.disabled = true;
  say(`Listening (${ui.mount.selectedOptions[0].textContent}); the first code comes after 2.56 s.`);
  clearTimeout(watchdog);
  watchdog = setTimeout(noSensorCheck, NO_SENSOR_AFTER_MS);
}

function stop() {
  window.removeEventListener('devicemotion', onMotion);
  clearTimeout(watchdog);
  state.listening = false;
  if (state.session) {
    state.session.free();
    state.session = null;
  }
  ui.start.disabled = !state.blob;
  ui.stop.disabled = true;
  ui.mount.disabled = false;
  ui.invertAcc.disabled = false;
  say(`Stopped after ${state.frames.length} frames.`);
}

function onMotion(event) {
  const acc = event.accelerationIncludingGravity;
  // Chrome fires one event with every value null on devices without sensors.
  if (!acc || (acc.x === null && acc.y === null && acc.z === null)) {
    state.eventsWithoutValues += 1;
    return;
  }
  const rate = event.rotationRate;
  if (!rate || rate.alpha === null) {
    state.eventsWithoutGyro += 1;
  }
  state.events += 1;
  state.firstEventMs ??= event.timeStamp;
  state.lastEventMs = event.timeStamp;
  // The W3C spec reads +9.8 m/s² on the axis pointing up; a browser that reports the
  // opposite sign is corrected by the checkbox.
  const sign = ui.invertAcc.checked ? -1 : 1;
  const before = performance.now();
  const ready = state.session.push(
    event.timeStamp, sign * num(acc.x), sign * num(acc.y), sign * num(acc.z),
    num(rate?.alpha), num(rate?.beta), num(rate?.gamma));
  const elapsedMs = performance.now() - before;
  if (ready > 0) {
    // This push completed a window: its time is the spectra and the int8 encode.
    state.encodeMs.push(elapsedMs);
    takeFrames();
  }
}

function takeFrames() {
  for (let f = state.session.next_frame(); f !== undefined; f = state.session.next_frame()) {
    const record = {
      sequence: f.sequence, timestamp_ms: f.timestamp_ms, flags: f.flags, latent_dim: f.latent_dim,
      spike_bits: f.spike_bits.toString(), active_dims: Array.from(f.active_dims),
      gamma_q15: Array.from(f.gamma_q15), mu_q: Array.from(f.mu_q), mu_scale: f.mu_scale,
      gamma: Array.from(f.gamma), mu: Array.from(f.mu),
      activity: f.activity, activity_score: f.activity_score, wire: hex(f.wire()),
    };
    f.free();
    state.frames.push(record);
    show(record);
  }
}

function flagText(bits) {
  return flagNames.filter((_, i) => (bits >> i) & 1).join(', ');
}

function clearRaster() {
  const ctx = ui.raster.getContext('2d');
  ctx.fillStyle = '#fafafa';
  ctx.fillRect(0, 0, ui.raster.width, ui.raster.height);
}

function drawColumn(record) {
  const canvas = ui.raster;
  const ctx = canvas.getContext('2d');
  const w = RASTER_COLUMN_PX;
  ctx.drawImage(canvas, -w, 0);
  const x = canvas.width - w;
  ctx.fillStyle = '#fafafa';
  ctx.fillRect(x, 0, w, canvas.height);
  const rowPx = canvas.height / Math.max(record.latent_dim, 1);
  record.active_dims.forEach((j, k) => {
    // Hue: sign of μ (red +, blue −); strength: |μ| up to 5 and γ.
    const strength = Math.min(Math.abs(record.mu[k]) / 5, 1) * record.gamma[k];
    const pale = Math.round(215 * (1 - strength));
    ctx.fillStyle = record.mu[k] >= 0 ? `rgb(215, ${pale}, ${pale})` : `rgb(${pale}, ${pale}, 215)`;
    ctx.fillRect(x + 1, j * rowPx, w - 2, Math.max(rowPx - 0.5, 1));
  });
  if (record.flags !== 0) {
    ctx.fillStyle = '#000';
    ctx.fillRect(x, canvas.height - 4, w, 4);
  }
}

function show(record) {
  drawColumn(record);
  const name = ACTIVITY_NAMES[record.activity];
  ui.activity.textContent = name || (record.flags & 16 ? 'no code' : '—');
  ui.activityScore.textContent = name ? `int8 score ${record.activity_score}` : '';
  ui.gamma.replaceChildren(...record.active_dims.map((j, k) => {
    const row = document.createElement('div');
    row.className = 'bar';
    const label = document.createElement('span');
    label.textContent = `dim ${j}`;
    const bar = document.createElement('i');
    bar.style.width = `${Math.round(record.gamma[k] * 200)}px`;
    const value = document.createElement('span');
    value.textContent = `γ ${record.gamma[k].toFixed(2)}  μ ${record.mu[k] >= 0 ? '+' : ''}${record.mu[k].toFixed(2)}`;
    row.append(label, bar, value);
    return row;
  }));
  const seconds = (state.lastEventMs - state.firstEventMs) / 1000;
  const rate = seconds > 0 ? (state.events - 1) / seconds : 0;
  const meanMs = state.encodeMs.reduce((a, b) => a + b, 0) / Math.max(state.encodeMs.length, 1);
  const flags = record.flags ? `; last frame flagged: ${flagText(record.flags)}` : '';
  const gyro = state.eventsWithoutGyro > 0 ? `; ${state.eventsWithoutGyro} events had no gyroscope values` : '';
  const g = Array.from(state.session.gravity_g);
  const signed = (v) => `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(2)}`;
  let worn = g.length ? `; gravity x ${signed(g[0])} y ${signed(g[1])} z ${signed(g[2])} g (upright: x ≈ +1)` : '';
  if (g.length && g[0] < -0.5) {
    worn += ' — x reads negative: the phone is upside down for this mount, or the browser ' +
      'reports acceleration with the opposite sign (try the invert option)';
  }
  ui.stats.textContent = `${state.frames.length} frames from ${state.events} events (${rate.toFixed(1)} Hz); ` +
    `encode ${meanMs.toFixed(2)} ms per window${flags}${gyro}${worn}`;
  ui.csv.disabled = false;
}

// γ and μ are f32 in the wasm: print the shortest decimal that reads back as the same f32,
// as Rust does in `vsc listen`, not the longer digits of the f64 JavaScript holds (same
// text for every f32 of magnitude ≥ 1e-6; below, JavaScript writes an exponent).
function f32Text(x) {
  for (let digits = 1; digits <= 9; digits++) {
    const shorter = Number(x.toPrecision(digits));
    if (Math.fround(shorter) === x) return String(shorter);
  }
  return String(x);
}

// Exactly the columns of `vsc listen --csv` (host-trainer/src/listen.rs), in its order, so
// one reader takes both files: activity (class id, 0 without a head) and activity_score
// right after the spike bits, then dense γ and μ (0 for inactive dims).
function downloadCsv() {
  const dims = state.latentDim;
  const header = ['sequence', 'timestamp_ms', 'flags', 'latent_dim', 'active', 'spike_bits',
    'activity', 'activity_score'];
  for (let j = 0; j < dims; j++) header.push(`gamma_${j}`);
  for (let j = 0; j < dims; j++) header.push(`mu_${j}`);
  const lines = [header.join(',')];
  for (const f of state.frames) {
    const gamma = new Array(dims).fill(0);
    const mu = new Array(dims).fill(0);
    f.active_dims.forEach((j, k) => { gamma[j] = f.gamma[k]; mu[j] = f.mu[k]; });
    lines.push([f.sequence, f.timestamp_ms, f.flags, f.latent_dim, f.active_dims.length,
      `0x${BigInt(f.spike_bits).toString(16)}`, f.activity, f.activity_score,
      ...gamma.map(f32Text), ...mu.map(f32Text)].join(','));
  }
  const url = URL.createObjectURL(new Blob([lines.join('\n') + '\n'], { type: 'text/csv' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = `vsc-codes-${new Date().toISOString().replace(/[:.]/g, '-')}.csv`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

ui.start.addEventListener('click', start);
ui.stop.addEventListener('click', stop);
ui.csv.addEventListener('click', downloadCsv);
ui.modelFile.addEventListener('change', loadModelFile);
ui.servedModel.addEventListener('click', loadServedModel);

try {
  await init();
  flagNames = flag_names();
  await loadServedModel();
} catch (e) {
  say(`Could not start the wasm module: ${e.message}`, true);
}
state.ready = true;
