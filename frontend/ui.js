// Small DOM and feedback helpers shared by every screen. No framework, no build step.
//
// The page runs under a CSP without 'unsafe-inline': never build HTML strings with style=
// attributes or inline handlers; create elements here and set styles through classes or the
// CSSOM (element.style.x = ...), which the CSP allows.

import { invoke } from './api.js';
import { describe } from './errors.js';

/** Create an element: h('td', {class: 'x', text: 'y', title, dataset: {}, on: {click}}, ...kids). */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value == null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'on') for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
    else if (key in el && typeof value !== 'string') el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

/** Set text only when it changed (avoids layout work on every poll). */
export function setText(el, text) {
  const value = text == null ? '' : String(text);
  if (el.textContent !== value) el.textContent = value;
}

// ------------------------------------------------------------------------------ notifications

const MAX_TOASTS = 4;

/** A message in the toast area (bottom right, aria-live). kind: error | ok | info. */
export function toast(message, kind = 'error', ms = 7000) {
  const area = document.getElementById('toasts');
  if (!area) { console.warn(message); return; }
  const item = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('span', { class: 'toast-text', text: message }),
    h('button', { class: 'toast-close', type: 'button', 'aria-label': 'Dismiss', text: '×',
      on: { click: () => item.remove() } }));
  area.append(item);
  while (area.children.length > MAX_TOASTS) area.firstElementChild.remove();
  if (ms) setTimeout(() => item.remove(), ms);
  return item;
}

// ------------------------------------------------------------------------------- field errors

function fieldBox(scope, field) {
  if (!scope || !field) return null;
  // data-field lists every name a command may use for this input ("bind bindAddress").
  const exact = scope.querySelector(`[data-field~="${CSS.escape(field)}"]`);
  if (exact) return exact;
  const last = String(field).split('.').pop();  // "filters.startDate" -> "startDate"
  return last !== field ? scope.querySelector(`[data-field~="${CSS.escape(last)}"]`) : null;
}

/** Remove every field error shown inside scope. */
export function clearErrors(scope) {
  for (const box of scope.querySelectorAll('[data-field]')) clearBox(box);
}

// An error under a field clears as soon as that field changes.
document.addEventListener('input', (ev) => clearBox(ev.target.closest?.('[data-field].has-error')));
document.addEventListener('change', (ev) => clearBox(ev.target.closest?.('[data-field].has-error')));

function clearBox(box) {
  if (!box) return;
  const out = box.querySelector('.field-error');
  if (out) out.textContent = '';
  box.classList.remove('has-error');
  for (const input of box.querySelectorAll('input, select, textarea')) input.removeAttribute('aria-invalid');
}

/**
 * Show a rejected command's error, in the operator's words (errors.js; command names the
 * command, for its field labels): next to the field it names when that field is in scope,
 * else in the toast area. Returns the element the message went to.
 */
export function showError(err, scope, command) {
  const message = describe(err, command);
  const box = fieldBox(scope, err && err.field);
  if (box) {
    const out = box.querySelector('.field-error');
    box.classList.add('has-error');
    const input = box.querySelector('input, select, textarea');
    if (input) input.setAttribute('aria-invalid', 'true');
    if (out) { out.textContent = message; return out; }
  }
  return toast(message, 'error');
}

/**
 * Run a command for a form: clears old errors, disables the submit buttons while it runs,
 * shows any error next to its field. Resolves to the result, or undefined on error.
 */
export async function runFor(scope, name, args, { busyEl } = {}) {
  if (scope) clearErrors(scope);
  const buttons = scope ? Array.from(scope.querySelectorAll('button')) : [];
  for (const b of buttons) b.disabled = true;
  if (busyEl) busyEl.classList.add('busy');
  try {
    const value = await invoke(name, args);
    clearErrors(scope?.closest('.panel') ?? document);  // success: older errors are stale
    return value;
  } catch (err) {
    showError(err, scope, name);
    return undefined;
  } finally {
    for (const b of buttons) b.disabled = false;
    if (busyEl) busyEl.classList.remove('busy');
  }
}

// ---------------------------------------------------------------------------- confirm dialog

/**
 * An in-page confirmation (not window.confirm, which tests and the Qt window cannot click).
 * Resolves true when confirmed. Escape or Cancel resolves false. Focus returns where it was.
 */
export function confirmDialog({ title, message, confirmLabel = 'Confirm', danger = true }) {
  const previous = document.activeElement;
  return new Promise((resolve) => {
    const cancel = h('button', { type: 'button', class: 'btn', id: 'confirm-cancel', text: 'Cancel' });
    const ok = h('button', { type: 'button', class: danger ? 'btn btn-danger' : 'btn btn-primary',
      id: 'confirm-ok', text: confirmLabel });
    const dialog = h('div', { class: 'dialog', role: 'alertdialog', 'aria-modal': 'true',
      'aria-labelledby': 'confirm-title', 'aria-describedby': 'confirm-message' },
    h('h2', { id: 'confirm-title', text: title }),
    h('p', { id: 'confirm-message', text: message }),
    h('div', { class: 'dialog-buttons' }, cancel, ok));
    const backdrop = h('div', { class: 'backdrop', id: 'confirm-dialog' }, dialog);
    const close = (answer) => {
      backdrop.remove();
      document.removeEventListener('keydown', onKey, true);
      if (previous && previous.focus) previous.focus();
      resolve(answer);
    };
    const onKey = (ev) => {
      if (ev.key === 'Escape') { ev.preventDefault(); close(false); }
      if (ev.key === 'Tab') {  // keep focus inside the dialog
        ev.preventDefault();
        (document.activeElement === ok ? cancel : ok).focus();
      }
    };
    cancel.addEventListener('click', () => close(false));
    ok.addEventListener('click', () => close(true));
    document.addEventListener('keydown', onKey, true);
    document.body.append(backdrop);
    cancel.focus();
  });
}

// ---------------------------------------------------------------------------------- formats

const nf = new Intl.NumberFormat('en-US');

export function fmtNumber(n) {
  return typeof n === 'number' && Number.isFinite(n) ? nf.format(n) : (n ?? '–');
}

export function fmtBytes(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

/** "2026-11-28T12:00:00.123456Z" -> "2026-11-28 12:00:00 UTC" (stored times are UTC). */
export function fmtDateTime(iso) {
  if (!iso) return '–';
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})/.exec(iso);
  return m ? `${m[1]} ${m[2]} UTC` : String(iso);
}

/** "12 s ago" style age of an ISO time. */
export function fmtAgo(iso, now = Date.now()) {
  const t = iso ? Date.parse(iso) : NaN;
  if (Number.isNaN(t)) return '–';
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
}

/** Label for a snake_case key: "pool_utilization" -> "Pool utilization". */
export function labelOf(key) {
  const text = String(key).replace(/_/g, ' ');
  return text.charAt(0).toUpperCase() + text.slice(1);
}

// ----------------------------------------------------------------------------------- polling

/**
 * Call fn every ms milliseconds without overlapping calls (a slow command delays the next
 * round instead of stacking calls). Returns {start, stop, now}.
 */
export function poller(fn, ms) {
  let timer = null;
  let running = false;
  let wanted = false;
  const tick = async () => {
    timer = null;
    if (!wanted) return;
    running = true;
    try { await fn(); } catch (e) { console.warn('poll failed', e); }
    running = false;
    if (wanted) timer = setTimeout(tick, ms);
  };
  return {
    start() { if (wanted) return; wanted = true; if (!running) tick(); },
    stop() { wanted = false; if (timer) clearTimeout(timer); timer = null; },
    now() { if (!running) { if (timer) clearTimeout(timer); wanted = true; tick(); } },
  };
}

/** A definition list of key/value pairs into dl (rebuilt only when its content changed). */
export function fillDl(dl, entries) {
  const key = JSON.stringify(entries);
  if (dl.dataset.key === key) return;
  dl.dataset.key = key;
  dl.replaceChildren(...entries.flatMap(([k, v, id]) => [
    h('dt', { text: k }), h('dd', { text: v, dataset: id ? { key: id } : undefined }),
  ]));
}
