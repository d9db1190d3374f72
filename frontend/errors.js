// Errors in the operator's words. A command's error carries a machine-readable `type` and the
// (camelCase) argument it names, `field`; the screen shows a sentence that names that field as
// it is labelled on screen, never an API argument name or a stored `…Z` timestamp. Everything
// here is data: labels per command and argument, sentences per kind of input and error type.
// docs/ui.md lists every sentence; keep the two in step.
//
// The same rules check the inputs before a command runs (and before any confirmation dialog),
// on the values as the operator typed them.

const DAYS = ['Older than (days)', 'days'];

/** command -> argument (the last part of error.field) -> [label on screen, kind of input]. */
export const FIELDS = {
  archive_old_events: { daysOld: DAYS },
  cleanup_old_archive_data: { daysOld: DAYS },
  restore_from_archive: { startDate: ['From', 'date'], endDate: ['To', 'date'] },
  export_events: {
    path: ['File', 'file'], format: ['Format', 'choice'], matchId: ['Match', 'choice'],
    since: ['From (optional)', 'date'], until: ['To, inclusive (optional)', 'date'],
  },
  export_statistics: { path: ['File', 'file'], format: ['Format', 'choice'], kind: ['Export', 'choice'] },
  update_udp_settings: { bind: ['Bind address', 'address'], port: ['Port', 'port'] },
  start_udp_server: { bind: ['Bind address', 'address'], port: ['Port', 'port'] },
  tournament_create: {
    name: ['Name', 'text'], city: ['City', 'text'], countryCode: ['Country', 'country'],
    country: ['Country', 'country'], startDate: ['First day', 'date'], durationDays: ['Days', 'count'],
  },
  set_udp_tournament_context: { tournamentId: ['Tournament', 'choice'], tournamentDayId: ['Day', 'choice'] },
  tournament_start_day: { tournamentDayId: ['Day', 'choice'] },
};

/** kind of input -> error type -> sentence ({label}: the label on screen). */
const BY_KIND = {
  days: { validation_error: '{label} must be a whole number from 0 to 100000.' },
  date: { validation_error: '{label} must be a date written YYYY-MM-DD, e.g. 2026-11-30.' },
  port: {
    validation_error: '{label} must be a whole number from 1 to 65535.',
    conflict: '{label} is in use by another program. Choose another port.',
  },
  address: {
    validation_error: '{label} must be an address of this computer, e.g. 0.0.0.0 for all of them.',
    conflict: '{label} cannot be used now: another program holds it.',
  },
  count: { validation_error: '{label} must be a whole number of 1 or more.' },
  country: { validation_error: '{label} must be a three-letter code, e.g. KOR.' },
  text: { validation_error: '{label} is not accepted. Check what you typed.' },
  choice: {
    validation_error: 'Choose a {label} from the list.',
    not_found: 'The chosen {label} no longer exists. Reload the list and choose again.',
  },
  file: {
    conflict: 'A file with this name exists. Tick “Replace” to overwrite it.',
    missing: 'Choose where to save the file (Choose…), or type its full path in {label}.',
    validation_error: '{label} cannot be used. Choose another place to save the file.',
  },
};

/** Finer validation sentences, by kind of input and what the command's message says (in order). */
const REASONS = {
  text: [
    [/at least|required|empty/, '{label} must be filled in.'],
    [/at most/, '{label} is too long.'],
  ],
  file: [
  [/symbolic link/, '{label} (or a folder above it) is a symbolic link, which is never followed. Choose the real folder.'],
  [/absolute/, '{label} must be a full path starting with “/”, e.g. /home/operator/events.csv.'],
  [/does not exist/, 'The folder in {label} does not exist. Choose an existing folder.'],
  [/is a directory|must name a file/, '{label} names a folder. Add a file name, e.g. events.csv.'],
  [/special file|not a regular file/, '{label} is a device or special file, not an ordinary file. Choose another name.'],
  [/too long/, 'A name in {label} is too long. Choose a shorter one.'],
  ],
};

/** error type -> sentence, when the field has none of its own (or there is no field). */
const BY_TYPE = {
  storage_full: 'The disk is full. Free some space, or choose another disk, and try again. Nothing was changed.',
  permission_denied: 'This computer does not allow restrike to write there. Choose another folder.',
  unauthorized: 'This page has lost its access token. Open the address restrike printed when it started (it ends in ?token=…).',
  network: 'restrike does not answer. Check that it is still running, then try again.',
  internal_error: 'Something went wrong inside restrike, and nothing was changed. The log file has the details.',
};

/** error message -> sentence, for errors whose type alone says too little (checked first). */
const BY_MESSAGE = [
  [/central database unavailable/, 'The central database cannot be reached, so its data cannot be shown or changed now. The feed is still received and kept on this computer; try again when the connection is back.'],
];

/** The status line while the central database cannot be reached (stats.storage.spool), or ''. */
export function centralStatus(spool, fmtNumber, fmtDateTime) {
  if (!spool) return '';
  const waiting = spool.depth?.events ?? 0;
  const since = spool.last_success_at ? ` Last stored there: ${fmtDateTime(spool.last_success_at)}.` : '';
  const full = spool.dropped ? ` ${fmtNumber(spool.dropped)} events could not be kept: the local spool is full.` : '';
  if (spool.unreachable) {
    return `Central database unreachable — ${fmtNumber(waiting)} events waiting on this computer.${since}${full}`;
  }
  if (waiting) return `Central database back — sending ${fmtNumber(waiting)} waiting events.${full}`;
  return full.trim();
}

/** Date checks, and the pairs that must be in order (values as typed). */
const DATE = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?$/;
const ORDER = {
  restore_from_archive: ['startDate', 'endDate'],
  export_events: ['since', 'until'],
};
const MISSING = '{label} must be filled in.';
const ORDER_SENTENCE = '{endLabel} ({end}) is before {startLabel} ({start}). The end must be the same day as the start or later.';

/** kind -> test of the typed text (true: fine). Only kinds checked before sending are here. */
const CHECKS = {
  days: (t) => /^\d{1,6}$/.test(t) && Number(t) <= 100000,
  date: (t) => dateKey(t, false) !== null,
  port: (t) => /^\d{1,5}$/.test(t) && Number(t) >= 1 && Number(t) <= 65535,
  count: (t) => /^\d{1,4}$/.test(t) && Number(t) >= 1,
};

function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (_m, k) => (values[k] ?? ''));
}

/** "2026-11-30" -> a comparable key ("…T23:59:59" for the end of a date-only range); null if not a date. */
function dateKey(text, endOfDay) {
  const m = DATE.exec(text);
  if (!m) return null;
  const [, y, mo, d, hh = endOfDay ? '23' : '00', mi = endOfDay ? '59' : '00', ss = endOfDay && !m[4] ? '59' : '00'] = m;
  const day = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d)));
  if (day.getUTCMonth() !== Number(mo) - 1 || day.getUTCDate() !== Number(d)) return null;  // 2026-02-30
  if (Number(hh) > 23 || Number(mi) > 59 || Number(ss) > 59) return null;
  return `${y}-${mo}-${d}T${hh}:${mi}:${ss}`;
}

function fieldInfo(command, field) {
  const key = String(field ?? '').split('.').pop();
  const [label, kind] = FIELDS[command]?.[key] ?? [null, null];
  return { key, label, kind };
}

/** The sentence for a command's error (err: {type, message, field}), in the operator's words. */
export function describe(err, command) {
  if (err?.operator) return err.message;  // from check(): in the operator's words already
  const type = err?.type ?? (err instanceof TypeError ? 'network' : 'internal_error');
  const reason = String(err?.message ?? '');
  const { label, kind } = fieldInfo(command, err?.field);
  if (label) {
    const values = { label };
    const finer = type === 'validation_error'
      ? (REASONS[kind] ?? []).find(([re]) => re.test(reason)) : null;
    const sentence = finer?.[1] ?? BY_KIND[kind]?.[type];
    if (sentence) return fill(sentence, values);
  }
  const byMessage = BY_MESSAGE.find(([re]) => re.test(reason));
  if (byMessage) return byMessage[1];
  if (BY_TYPE[type]) return BY_TYPE[type];
  return plain(reason, label);
}

/** A command's own message without API argument names: "daysOld: x" -> "Older than (days): x". */
function plain(reason, label) {
  const text = reason.replace(/^[\w.]+: /, label ? `${label}: ` : '').trim() || 'The command failed.';
  return text.charAt(0).toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? '' : '.');
}

/**
 * Check typed inputs before a command runs: typed is {argument: text as typed}. Returns the
 * first problem as an error ({type, field, message}, message already in the operator's words),
 * or null. Empty optional fields (not in `required`) are not checked.
 */
export function check(command, typed, required = Object.keys(typed)) {
  const [startKey, endKey] = ORDER[command] ?? [];
  for (const [key, raw] of Object.entries(typed)) {
    const text = String(raw ?? '').trim();
    if (text === '' && !required.includes(key)) continue;
    const { label, kind } = fieldInfo(command, key);
    if (text === '') return problem(key, BY_KIND[kind]?.missing ?? MISSING, { label });
    if (CHECKS[kind] && !CHECKS[kind](text)) return problem(key, BY_KIND[kind].validation_error, { label });
    const start = String(typed[startKey] ?? '').trim();
    if (key === endKey && start && dateKey(text, true) < dateKey(start, false)) {
      return problem(key, ORDER_SENTENCE, { start, end: text, startLabel: fieldInfo(command, startKey).label, endLabel: label });
    }
  }
  return null;
}

function problem(field, sentence, values) {
  return { type: 'validation_error', field, operator: true, message: fill(sentence, values) };
}

/** The Courts screen's words (docs/ui.md, "Courts"): health badges, status lines. */
export const COURTS = {
  health: {
    connected: 'Connected',
    spooling: 'Spooling: {depth} events waiting for the central database',
    silent: 'Silent for {silent}',
  },
  never: 'No event yet',
  empty: 'No court has written to this database yet. A court appears here with its first UDP session.',
  failed: 'The courts could not be read: {reason}',
  noMatch: 'No match yet',
  // get_courts' live: where the screen's updates come from
  live: {
    local: '· Live: updated as this instance stores the feed',
    notify: '· Live: every court\'s changes arrive from the central database',
    polling: '· Live link to the central database lost (reconnecting): refreshing every 5 s',
  },
};
