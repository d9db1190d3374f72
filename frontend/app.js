// Entry point of the operator UI: tabs, the screens, and the shared top status bar.
//
// Each screen module exports init(ctx) and optionally show()/hide() (called when its tab is
// selected or left, so it polls only while visible). ctx.bus lets screens share what one of them
// already knows (the match state, the UDP status) without asking Python twice.

import { invoke, listen, ready } from './api.js';
import { $, $$, toast } from './ui.js';
import * as events from './events.js';
import * as scoreboard from './scoreboard.js';
import * as udp from './udp.js';
import * as database from './database.js';
import * as tournament from './tournament.js';
import * as replay from './replay.js';
import * as statistics from './statistics.js';
import * as courts from './courts.js';

window.restrikeInvoke = invoke;  // handy from the devtools console and for the tests

const SCREENS = { events, scoreboard, udp, database, tournament, replay, statistics, courts };

function makeBus() {
  const subs = new Map();
  const last = new Map();
  return {
    on(name, cb) {
      if (!subs.has(name)) subs.set(name, new Set());
      subs.get(name).add(cb);
      if (last.has(name)) cb(last.get(name));
    },
    emit(name, value) {
      last.set(name, value);
      for (const cb of subs.get(name) || []) {
        try { cb(value); } catch (e) { console.error('bus listener', name, e); }
      }
    },
    get: (name) => last.get(name),
  };
}

function setupTabs() {
  const tabs = $$('[role="tab"]');
  let current = null;
  const select = (tab, focus = false) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute('aria-selected', String(on));
      t.tabIndex = on ? 0 : -1;
      document.getElementById(t.getAttribute('aria-controls')).hidden = !on;
    }
    if (focus) tab.focus();
    const name = tab.id.replace('tab-', '');
    if (current && current !== name) SCREENS[current].hide?.();
    current = name;
    SCREENS[name].show?.();
    document.documentElement.dataset.screen = name;
    if (history.replaceState) history.replaceState(null, '', `${location.pathname}${location.search}#${name}`);
  };
  for (const tab of tabs) {
    tab.addEventListener('click', () => select(tab));
    tab.addEventListener('keydown', (ev) => {
      const i = tabs.indexOf(tab);
      const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[ev.key];
      if (to === undefined) return;
      ev.preventDefault();
      select(tabs[(to + tabs.length) % tabs.length], true);
    });
  }
  // Alt+1..6 jumps to a screen from anywhere (the operator's hands stay on the keyboard).
  document.addEventListener('keydown', (ev) => {
    if (!ev.altKey || ev.ctrlKey || ev.metaKey) return;
    const n = Number(ev.key);
    if (n >= 1 && n <= tabs.length) { ev.preventDefault(); select(tabs[n - 1], true); }
  });
  const wanted = document.getElementById(`tab-${location.hash.slice(1)}`);
  select(wanted && tabs.includes(wanted) ? wanted : tabs[0]);
  return { select: (name) => select(document.getElementById(`tab-${name}`)) };
}

function watchPushLink() {
  // api.js marks <html> with .push-disconnected when the SSE stream drops (browser mode);
  // the window mode has no such link to lose.
  const pill = $('#top-push');
  const update = () => { pill.hidden = !document.documentElement.classList.contains('push-disconnected'); };
  new MutationObserver(update).observe(document.documentElement, { attributes: true, attributeFilter: ['class'] });
  update();
}

async function main() {
  await ready;
  const bus = makeBus();
  const ctx = { bus, invoke, listen };
  watchPushLink();
  for (const [name, screen] of Object.entries(SCREENS)) {
    try { screen.init(ctx); } catch (e) { console.error('init', name, e); toast(`The ${name} screen failed to start: ${e.message}`); }
  }
  const tabs = setupTabs();
  ctx.select = tabs.select;
  // Initial loads run in parallel; the UI is usable while they complete.
  await Promise.allSettled(Object.values(SCREENS).map((s) => s.load?.()));
  document.documentElement.dataset.ui = 'ready';
}

main().catch((e) => { console.error(e); toast(`The UI failed to start: ${e.message}`); });
