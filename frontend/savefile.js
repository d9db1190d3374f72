// Saving a file a command writes (event export, statistics export): one path for every screen.
//
// In the desktop window the command writes where the operator chose: the native "Save as"
// dialog (the window's choose_save_file command) fills the File field, or the path is typed.
// In a browser (HTTP mode) there is no path to choose on the server: POST
// /api/download/<command> runs the command on a file the server names and answers the file,
// which the browser saves as a download (host/http_ui.py).

import { runFor, clearErrors, showError, h } from './ui.js';

/** True in a browser (HTTP mode): files are downloaded, no path is typed or chosen. */
export function downloads() {
  return window.pywebview?.platform === 'http';
}

/** "restrike-<what>-YYYY-MM-DD.<format>": the name offered for a file. */
export function datedName(what, format) {
  const day = new Date().toISOString().slice(0, 10);
  return `restrike-${what}-${day}.${format}`;
}

/**
 * The native "Save as" dialog (window only), opened in the folder of what `pathInput` holds,
 * suggesting its name or `suggested`; fills `pathInput` and ticks `overwriteInput` when the
 * operator agreed to replace an existing file. Errors show in `scope`.
 */
export async function chooseFile(scope, pathInput, overwriteInput, suggested) {
  const typed = pathInput.value.trim();
  const chosen = await runFor(scope, 'choose_save_file', {
    suggestedName: typed.split('/').pop() || suggested,
    directory: typed.includes('/') ? typed.slice(0, typed.lastIndexOf('/')) : '',
  });
  if (!chosen) return;  // cancelled (null) or an error (shown)
  pathInput.value = chosen.path;
  // The dialog already asked whether to replace an existing file: that answer was yes.
  overwriteInput.checked = Boolean(chosen.exists);
}

/**
 * Browser mode: POST /api/download/<command> with its named arguments (no path), then save
 * the answer as `filename`. Resolves to the command's result with `path` saying where the
 * file went, or undefined when refused (the error shown in `scope`, named as `command`'s).
 */
export async function download(scope, command, args, filename) {
  const buttons = [...scope.querySelectorAll('button')];
  for (const b of buttons) b.disabled = true;
  try {
    const token = sessionStorage.getItem('restrike_token') || '';
    const res = await fetch(`/api/download/${command}?filename=${encodeURIComponent(filename)}`, {
      method: 'POST', body: JSON.stringify(args),
      headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    });
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      throw body.error ?? { type: 'internal_error', message: `HTTP ${res.status}` };
    }
    const result = JSON.parse(res.headers.get('X-Command-Result') || '{}');
    const url = URL.createObjectURL(await res.blob());
    h('a', { href: url, download: filename }).click();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    clearErrors(scope.closest('.panel') ?? document);
    return { ...result, path: `the browser's downloads (${filename})` };
  } catch (err) {
    showError(err, scope, command);
    return undefined;
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

/**
 * Run `command` to save its file: downloaded in a browser, written to `path` (with
 * `overwrite`) in the window. `args` are its other named arguments. Resolves to its result,
 * or undefined when refused (the error shown in `scope`).
 */
export function saveWith(scope, command, args, { path, overwrite, filename }) {
  return downloads() ? download(scope, command, args, filename)
    : runFor(scope, command, { ...args, path, overwrite });
}
