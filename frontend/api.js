// The one way the UI talks to Python, identical in the desktop window and in a browser.
//
//   invoke(name, args)  -> Promise of the command's result (Tauri-compatible: args is an object
//                          of named arguments, snake_case or camelCase, or an array). It is
//                          exactly window.pywebview.api[name](...args) (an object as the one
//                          argument): how arguments bind is decided in Python only (host/binder.py).
//   listen(name, cb)    -> calls cb(payload) for every push of that name; returns unlisten().
//   ready               -> Promise resolved when window.pywebview.api can be called.
//
// Window mode (QtWebEngine): pywebview injects window.pywebview.api; Python never raises through
// it (pywebview would put the Python traceback in error.stack) but answers [ok, value]
// (host/bridge.py), which we turn back into the result or a rejected Promise here, by wrapping
// every api function.
// Browser mode (restrike --headless): window.pywebview.api is a shim over POST /api/invoke and
// pushes arrive over Server-Sent Events from /api/events. Errors reject with an Error that has
// `type`, `message` and `field`.

const listeners = new Map();

export function commandError(e) {
  const err = new Error(e.message || 'command failed');
  err.name = 'CommandError';
  err.type = e.type || 'internal_error';
  err.field = e.field ?? null;
  return err;
}

function dispatch(batch) {
  for (const item of batch) {
    const set = listeners.get(item.event);
    if (!set) continue;
    for (const cb of set) {
      try { cb(item.payload); } catch (e) { console.error('listener of', item.event, e); }
    }
  }
}

export function listen(name, cb) {
  if (!listeners.has(name)) listeners.set(name, new Set());
  listeners.get(name).add(cb);
  return () => listeners.get(name).delete(cb);
}

const inWindow = /QtWebEngine/.test(navigator.userAgent) || !!(window.pywebview && window.pywebview.token);

function wrapWindowApi() {
  const api = window.pywebview.api;
  for (const name of Object.keys(api)) {
    const fn = api[name];
    if (typeof fn !== 'function' || fn.__restrike) continue;
    const wrapped = async (...args) => {
      const [ok, value] = await fn(...args);
      if (!ok) throw commandError(value);
      return value;
    };
    wrapped.__restrike = true;
    api[name] = wrapped;
  }
}

function token() {
  const fromUrl = new URLSearchParams(location.search).get('token');
  if (fromUrl) sessionStorage.setItem('restrike_token', fromUrl);
  return fromUrl || sessionStorage.getItem('restrike_token') || '';
}

async function httpInvoke(name, args) {
  const res = await fetch(`/api/invoke/${encodeURIComponent(name)}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token()}` },
    body: JSON.stringify(args ?? []),
  });
  const body = await res.json().catch(() => ({ error: { type: 'internal_error', message: `HTTP ${res.status}` } }));
  if (!res.ok) throw commandError(body.error || { message: `HTTP ${res.status}` });
  return body;
}

function installBrowserShim() {
  // Any property is a command; its arguments are posted as the list they are, and the server
  // binds them exactly as the window bridge does (api.x({daysOld: 30}) is named).
  const api = new Proxy({}, {
    get: (_t, name) => (typeof name === 'string' && name !== 'then')
      ? (...args) => httpInvoke(name, args)
      : undefined,
  });
  window.pywebview = { api, platform: 'http' };
  const source = new EventSource(`/api/events?token=${encodeURIComponent(token())}`);
  source.onmessage = (ev) => dispatch(JSON.parse(ev.data));
  source.onerror = () => document.documentElement.classList.add('push-disconnected');
  source.onopen = () => document.documentElement.classList.remove('push-disconnected');
  window.__restrikeReady = true;
  window.dispatchEvent(new CustomEvent('pywebviewready'));
}

export const ready = new Promise((resolve) => {
  if (!inWindow) { installBrowserShim(); resolve(); return; }
  window.__restrikePush = dispatch;
  const done = () => { wrapWindowApi(); window.__restrikeReady = true; resolve(); };
  if (window.pywebview && window.pywebview.api && Object.keys(window.pywebview.api).length) done();
  else window.addEventListener('pywebviewready', done, { once: true });
});

export async function invoke(name, args) {
  await ready;
  const fn = window.pywebview.api[name];
  if (typeof fn !== 'function') throw commandError({ type: 'not_found', message: `there is no command named '${name}'` });
  if (Array.isArray(args)) return fn(...args);
  return args == null ? fn() : fn(args);
}
