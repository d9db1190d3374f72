// Screen 5: which tournament and day incoming events belong to. Create a tournament, list its
// days, start a day, set or clear the UDP tournament context.

import { h, $, setText, runFor, confirmDialog, toast } from './ui.js';
import { describe } from './errors.js';

let ctx;
let tournaments = [];
let days = [];
let context = null;

const idOf = (x) => x?.id ?? x?.tournament_id ?? x?.tournament_day_id;

function tournamentLabel(t) {
  const where = [t.city ?? t.location, t.country_code ?? t.country].filter(Boolean).join(', ');
  return `${t.name}${where ? ` · ${where}` : ''}${t.status ? ` · ${t.status}` : ''}`;
}

function dayLabel(d) {
  return `Day ${d.day_number ?? d.number ?? '?'}${d.date ? ` · ${d.date}` : ''}${d.status ? ` · ${d.status}` : ''}`;
}

function contextIds(c) {
  if (!c) return { t: null, d: null };
  return { t: c.tournament_id ?? c.tournamentId ?? c.tournament?.id ?? null,
    d: c.tournament_day_id ?? c.tournamentDayId ?? c.day?.id ?? c.tournament_day?.id ?? null };
}

function contextText(c) {
  const { t, d } = contextIds(c);
  if (t == null) return 'No tournament: events are stored without one';
  const tour = c.tournament?.name ?? c.tournament_name ?? tournaments.find((x) => idOf(x) === t)?.name ?? `Tournament ${t}`;
  const dayNo = c.day?.day_number ?? c.tournament_day?.day_number ?? c.day_number
    ?? days.find((x) => idOf(x) === d)?.day_number;
  return `${tour}${d != null ? ` · day ${dayNo ?? `#${d}`}` : ''}`;
}

function renderContext() {
  const text = contextText(context);
  setText($('#ctx-current'), text);
  const { t } = contextIds(context);
  setText($('#top-context'), t == null ? 'No tournament' : text);
  $('#top-context').classList.toggle('pill-on', t != null);
  $('#ctx-clear').disabled = t == null;
}

function renderDays() {
  const select = $('#ctx-day');
  const keep = select.value;
  select.replaceChildren(...(days.length ? days.map((d) => h('option', { value: String(idOf(d)), text: dayLabel(d) }))
    : [h('option', { value: '', text: 'No days' })]));
  const want = contextIds(context).d;
  const values = [...select.options].map((o) => o.value);
  if (values.includes(keep)) select.value = keep;
  else if (want != null && values.includes(String(want))) select.value = String(want);
  else {
    const active = days.find((d) => d.status === 'active');
    if (active) select.value = String(idOf(active));
  }
  $('#ctx-days').hidden = !days.length;
  $('#ctx-days-empty').hidden = Boolean(days.length) || !$('#ctx-tournament').value;
  $('#ctx-days-body').replaceChildren(...days.map((d) => h('tr', { class: d.status === 'active' ? 'row-active' : '' },
    h('td', { text: d.day_number ?? '?' }), h('td', { text: d.date ?? '–' }), h('td', { text: d.status ?? '–' }))));
}

async function loadDays() {
  const t = $('#ctx-tournament').value;
  if (!t) { days = []; renderDays(); return; }
  try {
    const list = await ctx.invoke('tournament_get_days', [Number(t)]);
    days = Array.isArray(list) ? list : (list?.days ?? []);
  } catch (err) {
    days = [];
    toast(`Cannot list the days: ${describe(err)}`);
  }
  renderDays();
}

async function loadTournaments(selectId) {
  try {
    const list = await ctx.invoke('tournament_get_all');
    tournaments = Array.isArray(list) ? list : (list?.tournaments ?? []);
  } catch (err) {
    toast(`Cannot list the tournaments: ${describe(err)}`);
    tournaments = [];
  }
  const select = $('#ctx-tournament');
  const keep = selectId != null ? String(selectId) : select.value || String(contextIds(context).t ?? '');
  select.replaceChildren(...(tournaments.length
    ? tournaments.map((t) => h('option', { value: String(idOf(t)), text: tournamentLabel(t) }))
    : [h('option', { value: '', text: 'No tournament yet: create one' })]));
  if ([...select.options].some((o) => o.value === keep)) select.value = keep;
  await loadDays();
}

async function loadContext() {
  try {
    context = await ctx.invoke('get_udp_tournament_context');
  } catch (err) {
    context = null;
    toast(`Tournament context: ${describe(err)}`, 'info');
  }
  renderContext();
}

function optional(value) {
  const t = value.trim();
  return t === '' ? undefined : t;
}

export function init(c) {
  ctx = c;
  $('#ctx-tournament').addEventListener('change', loadDays);
  $('#ctx-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const t = $('#ctx-tournament').value;
    const d = $('#ctx-day').value;
    const r = await runFor(ev.currentTarget, 'set_udp_tournament_context',
      { tournamentId: t ? Number(t) : null, tournamentDayId: d ? Number(d) : null });
    if (r === undefined) return;
    await loadContext();
    toast(`Incoming events now belong to ${contextText(context)}.`, 'ok', 4000);
  });
  $('#ctx-start-day').addEventListener('click', async () => {
    const d = $('#ctx-day').value;
    const form = $('#ctx-form');
    const r = await runFor(form, 'tournament_start_day', { tournamentDayId: d ? Number(d) : null });
    if (r === undefined) return;
    await loadDays();
    await loadContext();
    toast('Day started.', 'ok', 4000);
  });
  $('#ctx-clear').addEventListener('click', async () => {
    const ok = await confirmDialog({ title: 'Clear the tournament context?',
      message: 'New events will be stored without a tournament or day.', confirmLabel: 'Clear', danger: true });
    if (!ok) return;
    const r = await runFor($('#panel-tournament'), 'clear_udp_tournament_context', []);
    if (r === undefined) return;
    await loadContext();
  });
  $('#tour-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const form = ev.currentTarget;
    const daysText = $('#tour-days').value.trim();
    const args = {
      name: $('#tour-name').value.trim(),
      city: optional($('#tour-location').value),
      countryCode: optional($('#tour-country').value.toUpperCase()),
      startDate: optional($('#tour-start').value),
      durationDays: /^\d+$/.test(daysText) ? Number(daysText) : (daysText || undefined),
    };
    for (const k of Object.keys(args)) if (args[k] === undefined) delete args[k];
    const r = await runFor(form, 'tournament_create', args);
    if (r === undefined) return;
    form.reset();
    await loadTournaments(r?.id);
    toast(`Tournament “${args.name}” created.`, 'ok', 4000);
  });
}

export async function load() {
  await loadContext();
  await loadTournaments();
  renderContext();
}

export function show() { load(); }
