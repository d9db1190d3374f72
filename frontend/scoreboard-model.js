// Pure helpers that turn a pss_match_state snapshot into what a scoreboard shows. Shared by the
// Scoreboard screen and the OBS overlay (overlay/scoreboard.js), so both say the same thing.

export const SIDES = ['blue', 'red'];
const DEFAULT_COLOURS = { blue_bg: '#1f5fd6', blue_fg: '#ffffff', red_bg: '#d62f2f', red_fg: '#ffffff' };
const HEX = /^#[0-9a-fA-F]{6}$/;

/** "Round 2 of 3", "Golden point", "Round –". */
export function roundLabel(s) {
  const r = s?.round;
  if (r == null) return 'Round –';
  const total = s?.match?.rounds;
  if (r === 4 && (!total || total <= 3)) return 'Golden point';
  return total ? `Round ${r} of ${total}` : `Round ${r}`;
}

/** The clock text, "–:––" before the first clk. */
export function clockText(s) {
  return s?.clock?.text ?? '–:––';
}

/** Background and text colour of a side, from the match configuration when valid. */
export function sideColours(s, side) {
  const c = s?.match?.colors || {};
  const bg = HEX.test(c[`${side}_bg`] || '') ? c[`${side}_bg`] : DEFAULT_COLOURS[`${side}_bg`];
  const fg = HEX.test(c[`${side}_fg`] || '') ? c[`${side}_fg`] : DEFAULT_COLOURS[`${side}_fg`];
  return { bg, fg };
}

/** Names and country of a side, with placeholders. */
export function athlete(s, side) {
  const a = s?.athletes?.[side];
  return {
    short: a?.short || side.toUpperCase(),
    long: a?.long || '',
    country: a?.country || '',
  };
}

/** "Quarterfinal · M- 68 kg · Senior" headline of the match, with its number. */
export function matchLabel(s) {
  const m = s?.match;
  if (!s?.loaded && !m?.number) return 'No match loaded';
  const parts = [m?.phase, m?.category, m?.division].filter(Boolean);
  return `${m?.number ? `Match ${m.number}` : 'Match'}${parts.length ? ` · ${parts.join(' · ')}` : ''}`;
}

/** Number of round columns to show: the configured rounds, or as many as have data. */
export function roundCount(s) {
  const rs = s?.round_scores || {};
  return Math.max(s?.match?.rounds || 0, rs.blue?.length || 0, rs.red?.length || 0,
    s?.round_winners?.length || 0, s?.round || 0, 3);
}

export function winnerOfRound(s, i) {
  const w = s?.round_winners?.[i];
  return w === 1 ? 'blue' : w === 2 ? 'red' : null;
}

/** "Winner: K. ARSLAN (blue) · 2-1 PTF", or null while there is none. */
export function winnerText(s) {
  const w = s?.winner;
  if (!w || (!w.side && !w.name)) return null;
  const side = w.side ? String(w.side).toLowerCase() : null;
  const name = w.name || (side ? athlete(s, side).short : '');
  return `Winner: ${name}${side ? ` (${side})` : ''}${w.classification ? ` · ${w.classification}` : ''}`;
}

export function winnerSide(s) {
  const side = s?.winner?.side ? String(s.winner.side).toLowerCase() : null;
  return side === 'blue' || side === 'red' ? side : null;
}

const POINTS = { 1: 'punch', 2: 'body', 3: 'head', 4: 'technical body', 5: 'technical head' };

/** "3 · head (hit 45)" for the last points of a side. */
export function lastPointsText(s, side) {
  const p = s?.last_points?.[side];
  if (!p) return '–';
  const levels = p.hit_levels?.length ? ` (hit ${p.hit_levels.join(', ')})` : '';
  return `${p.points ?? p.point_type} · ${POINTS[p.point_type] ?? 'points'}${levels}`;
}

export function injuryText(s) {
  const i = s?.injury;
  if (!i || i.visible === false) return null;
  const who = i.side && i.side !== 'referee' ? ` ${i.side}` : '';
  return `Injury${who} ${i.text ?? ''}`.trim();
}

export function breakText(s) {
  const b = s?.break;
  if (!b || b.active === false) return null;
  return `Break ${b.text ?? ''}`.trim();
}

export function timeOutText(s) {
  const t = s?.time_outs || {};
  const parts = SIDES.filter((side) => t[side]).map((side) => `${side} ${t[side].text ?? ''}`.trim());
  return parts.length ? `Time-out ${parts.join(', ')}` : null;
}

export function challengeText(c) {
  const who = c.side === 'referee' ? 'Referee' : c.side ? c.side[0].toUpperCase() + c.side.slice(1) : 'Unknown';
  const won = c.won == null ? '' : c.won ? ', won' : ', lost';
  return `${who}${c.round ? ` (R${c.round})` : ''}: ${c.state}${won}`;
}

/** A court of get_courts() as the snapshot shape above (the overlay's ?court=NAME). */
export function courtSnapshot(court) {
  const m = court?.match;
  if (!m) return null;
  const side = m.winner?.side ? String(m.winner.side).toLowerCase() : null;
  return {
    loaded: true,
    status: m.status,
    match: { number: m.number, phase: m.phase, category: m.category, division: m.division,
      rounds: m.rounds, colors: m.colors || {} },
    athletes: m.athletes || {},
    round: m.round,
    clock: { text: m.clock ?? null, running: m.status === 'running' },
    current_scores: m.scores || {},
    warnings: m.warnings || {},
    round_scores: {},
    round_winners: [],
    winner: m.winner ? { side, name: m.winner.name, classification: m.winner.classification } : {},
  };
}
