// dropq console: the page over /api/ (docs/console-api.md). Plain DOM, no
// framework. Every value from the server is put in the page as text
// (textContent, createTextNode), never as HTML: file names, errors and
// handler output cannot inject markup or script. The token, when given, is
// kept in sessionStorage and sent only as an Authorization header.
'use strict';

const TOKEN_KEY = 'dropq-token';
const STATES = ['pending', 'active', 'scheduled', 'failed', 'done'];
const PAGE = 50;
let session = { read_only: true, authorized: false };
let refreshTimer = null;
// Bumped by each route(): a view drawn for an older route is dropped, so a
// late answer cannot paint over the page the operator moved to.
let generation = 0;

// ------------------------------------------------------------------ helpers

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options) {
  const opts = Object.assign({ method: 'GET', headers: {} }, options || {});
  if (token()) opts.headers['Authorization'] = 'Bearer ' + token();
  if (opts.body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(opts.body);
  }
  let res;
  try {
    res = await fetch(path, opts);
  } catch (e) {
    throw new ApiError(0, 'console unreachable: ' + e.message);
  }
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  if (!res.ok) throw new ApiError(res.status, (body && body.error) || res.statusText);
  return body;
}

function fmtTime(ms) {
  if (!ms) return '-';
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19) + 'Z';
}

function fmtAge(s) {
  if (s === null || s === undefined) return '?';
  if (s < 60) return s.toFixed(1) + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm' + Math.floor(s % 60) + 's';
  return Math.floor(s / 3600) + 'h' + Math.floor((s % 3600) / 60) + 'm';
}

// What the banner shows: '' (nothing), 'redis' (Redis unreachable: cleared
// by the next answer that reached Redis) or 'message' (what an action
// answered, or its error: kept until the user goes elsewhere or another
// message replaces it, so that a refresh does not take it away unread).
let bannerKind = '';

function setBanner(text, note, kind) {
  const b = document.getElementById('banner');
  b.hidden = !text;
  b.className = note ? 'note' : '';
  b.textContent = text || '';
  bannerKind = text ? (kind || 'message') : '';
}

function setRedis(up, why) {
  const chip = document.getElementById('redis-status');
  chip.className = 'chip ' + (up ? 'up' : 'down');
  chip.textContent = up ? 'Redis up' : 'Redis unreachable';
  if (!up) setBanner(why || 'Redis unreachable', false, 'redis');
  else if (bannerKind === 'redis') setBanner('');
}

// Runs `fn` (which returns a promise) now, and again `ms` after each run
// ends, until the route changes: a slow answer delays the next request
// instead of piling requests up.
function every(ms, fn) {
  clearTimeout(refreshTimer);
  const gen = generation;
  const tick = async () => {
    await fn();
    if (gen === generation) refreshTimer = setTimeout(tick, ms);
  };
  tick();
}

function showError(e) {
  if (e.status === 503 || e.status === 0) setRedis(false, e.message);
  else setBanner(e.message);
}

// ------------------------------------------------------------------ session

async function loadSession() {
  try {
    session = await api('/api/session');
  } catch (e) {
    session = { read_only: true, authorized: false };
  }
  const mode = document.getElementById('mode');
  const form = document.getElementById('token-form');
  const forget = document.getElementById('token-forget');
  if (session.read_only) {
    mode.textContent = 'read-only (no token configured)';
    form.hidden = true;
    forget.hidden = true;
  } else if (session.authorized) {
    mode.textContent = 'actions enabled';
    form.hidden = true;
    forget.hidden = false;
  } else {
    mode.textContent = token() ? 'read-only (wrong token)' : 'read-only: enter the token to act';
    form.hidden = false;
    forget.hidden = true;
  }
}

function canAct() { return session.authorized === true; }

// ------------------------------------------------------------------ overview

function chart(rates) {
  const w = 180, h = 36, pad = 2;
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('class', 'chart');
  svg.setAttribute('width', w);
  svg.setAttribute('height', h);
  const series = ['enqueued', 'done', 'failed'];
  let max = 0;
  for (const r of rates) for (const s of series) max = Math.max(max, r[s]);
  const title = document.createElementNS(ns, 'title');
  const last = rates.length ? rates[rates.length - 1] : null;
  title.textContent = last ? series.map((s) => s + ' ' + (last[s] / 60).toFixed(2) + '/s').join(', ') +
      ' (this minute)' : 'no data';
  svg.append(title);
  for (const s of series) {
    const pts = rates.map((r, i) => {
      const x = pad + (i * (w - 2 * pad)) / Math.max(rates.length - 1, 1);
      const y = h - pad - (max ? (r[s] / max) * (h - 2 * pad) : 0);
      return x.toFixed(1) + ',' + y.toFixed(1);
    });
    const line = document.createElementNS(ns, 'polyline');
    line.setAttribute('class', s);
    line.setAttribute('points', pts.join(' '));
    svg.append(line);
  }
  return svg;
}

function rateText(rates) {
  // Per second over the 15 minutes shown.
  const sum = { enqueued: 0, done: 0, failed: 0 };
  for (const r of rates) for (const k of Object.keys(sum)) sum[k] += r[k];
  const secs = Math.max(rates.length, 1) * 60;
  return el('div', { class: 'legend' },
    el('span', { class: 'enqueued' }, 'in ' + (sum.enqueued / secs).toFixed(2) + '/s'),
    el('span', { class: 'done' }, 'done ' + (sum.done / secs).toFixed(2) + '/s'),
    el('span', { class: 'failed' }, 'failed ' + (sum.failed / secs).toFixed(2) + '/s'));
}

function limitsText(q) {
  const parts = [];
  if (q.rate_limit) parts.push('rate ' + q.rate_limit.max + ' per ' + q.rate_limit.per_ms + ' ms');
  if (q.max_active) parts.push('max_active ' + q.max_active.max + ' (running ' + q.max_active.running + ')');
  return parts.length ? parts.join('; ') : '-';
}

function stateCell(q) {
  const bits = [];
  if (q.paused) bits.push(el('div', { class: 'paused' }, 'paused'));
  if (q.throttled_until) {
    bits.push(el('div', { class: 'throttled' },
      'throttled until ' + fmtTime(q.throttled_until) + (q.throttled_reason ? ' (' + q.throttled_reason + ')' : '')));
  }
  if (!bits.length) bits.push(el('span', { class: 'muted' }, 'running'));
  return bits;
}

function pauseButton(q, after) {
  if (!canAct()) return null;
  return el('button', {
    'data-action': q.paused ? 'resume' : 'pause',
    'data-queue': q.name,
    onclick: async () => {
      try {
        await api('/api/queues/' + encodeURIComponent(q.name) + '/' + (q.paused ? 'resume' : 'pause'),
          { method: 'POST', body: {} });
        after();
      } catch (e) { showError(e); }
    },
  }, q.paused ? 'Resume' : 'Pause');
}

function countCell(q, field, link) {
  const v = q[field];
  const text = v === null || v === undefined ? '?' : String(v);
  const content = link ? el('a', { href: '#/queue/' + encodeURIComponent(q.name) + '?state=' + field }, text) : text;
  return el('td', { class: 'num', 'data-queue': q.name, 'data-field': field }, content);
}

async function renderOverview(view) {
  const gen = generation;
  let data;
  try {
    data = await api('/api/overview');
    if (gen !== generation) return;
    setRedis(true);
  } catch (e) {
    if (gen === generation) showError(e);
    return;
  }
  const refresh = () => renderOverview(view);
  const rows = data.queues.map((q) => el('tr', { 'data-queue': q.name },
    el('td', {}, el('a', { href: '#/queue/' + encodeURIComponent(q.name) }, q.name)),
    countCell(q, 'pending', true), countCell(q, 'active', true), countCell(q, 'scheduled', true),
    countCell(q, 'failed', true), countCell(q, 'done', true),
    el('td', { class: 'num', 'data-queue': q.name, 'data-field': 'oldest' },
      q.pending ? fmtAge(q.oldest_pending_age_s) : '-'),
    el('td', { 'data-queue': q.name, 'data-field': 'state' }, stateCell(q)),
    el('td', {}, limitsText(q)),
    el('td', {}, chart(q.rates), rateText(q.rates)),
    el('td', {}, pauseButton(q, refresh))));
  const recent = [];
  for (const q of data.queues) {
    for (const j of q.recent_failed || []) {
      recent.push(el('tr', { 'data-job': j.id },
        el('td', {}, q.name), nameCell(j), el('td', {}, fmtTime(j.time_ms)),
        el('td', { class: 'failed' }, whatText(j))));
    }
  }
  const instances = data.instances.map((i) => el('tr', { 'data-instance': i.name },
    el('td', {}, i.name), el('td', {}, i.host || '-'), el('td', {}, i.version || '-'),
    el('td', { class: 'num' }, i.alive ? fmtAge(i.heartbeat_age_s) : 'gone'),
    el('td', { class: 'num' }, i.active === undefined ? '-' : String(i.active)),
    el('td', {}, i.roles ? Object.entries(i.roles).map(([q, r]) => q + ': ' + r).join(', ') : '-')));
  view.replaceChildren(
    el('h1', {}, 'Queues'),
    el('table', { id: 'queues' },
      el('thead', {}, el('tr', {}, el('th', {}, 'Queue'), el('th', { class: 'num' }, 'Pending'),
        el('th', { class: 'num' }, 'Active'), el('th', { class: 'num' }, 'Scheduled'),
        el('th', { class: 'num' }, 'Failed'), el('th', { class: 'num' }, 'Done'),
        el('th', { class: 'num' }, 'Oldest pending'), el('th', {}, 'State'), el('th', {}, 'Limits'),
        el('th', {}, 'Last 15 minutes'), el('th', {}, ''))),
      el('tbody', {}, rows)),
    el('h2', {}, 'Recent failures'),
    recent.length ? el('table', { id: 'recent-failed' },
      el('thead', {}, el('tr', {}, el('th', {}, 'Queue'), el('th', {}, 'Name'), el('th', {}, 'Failed at'),
        el('th', {}, 'Result'))),
      el('tbody', {}, recent)) : el('p', { class: 'muted' }, 'None.'),
    el('h2', {}, 'Instances'),
    el('table', { id: 'instances' },
      el('thead', {}, el('tr', {}, el('th', {}, 'Instance'), el('th', {}, 'Host'), el('th', {}, 'Version'),
        el('th', { class: 'num' }, 'Heartbeat age'), el('th', { class: 'num' }, 'Active jobs'),
        el('th', {}, 'Roles'))),
      el('tbody', {}, instances)));
}

// ------------------------------------------------------------------ queue view

function queryOf(hash) {
  const i = hash.indexOf('?');
  return new URLSearchParams(i < 0 ? '' : hash.slice(i + 1));
}

function queueHash(name, params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) p.set(k, v);
  return '#/queue/' + encodeURIComponent(name) + '?' + p.toString();
}

function nameCell(job) {
  const name = job.name === undefined ? '(no record)' : job.name;
  return el('td', { class: 'name' }, el('a', { href: '#/job/' + encodeURIComponent(job.id) }, name),
    job.name_hex ? el('div', { class: 'hex' }, 'bytes: ' + job.name_hex) : null);
}

function whatText(job) {
  let s = job.result || '';
  if (job.exit !== undefined) s += ' ' + job.exit;
  if (job.error) s += (s ? ': ' : '') + job.error;
  return s;
}

async function renderQueue(view, name, params) {
  const state = STATES.includes(params.get('state')) ? params.get('state') : 'pending';
  const filter = {
    match: params.get('match') || '', id: params.get('id') || '', error: params.get('error') || '',
    since: params.get('since') || '',
  };
  const offset = Math.max(0, parseInt(params.get('offset') || '0', 10) || 0);
  const q = new URLSearchParams({ state, offset: String(offset), limit: String(PAGE) });
  for (const [k, v] of Object.entries(filter)) if (v) q.set(k, v);
  const gen = generation;
  let page, overview;
  try {
    [page, overview] = await Promise.all([
      api('/api/queues/' + encodeURIComponent(name) + '/jobs?' + q.toString()),
      api('/api/overview'),
    ]);
    if (gen !== generation) return;
    setRedis(true);
  } catch (e) {
    if (gen === generation) showError(e);
    return;
  }
  const qs = overview.queues.find((x) => x.name === name) || {};
  const go = (extra) => { location.hash = queueHash(name, Object.assign({ state }, filter, extra)); };
  const tabs = el('div', { class: 'tabs' }, STATES.map((s) => el('a', {
    href: queueHash(name, Object.assign({ state: s }, filter)), class: s === state ? 'on' : '',
    'data-state': s,
  }, s + ' (' + (qs[s] === undefined ? '?' : qs[s]) + ')')));
  const inputs = {
    match: el('input', { id: 'f-match', placeholder: 'name: text or glob (*.pdf, alice/**)', value: filter.match, size: 30 }),
    id: el('input', { id: 'f-id', placeholder: 'job id prefix', value: filter.id, size: 14 }),
    error: el('input', { id: 'f-error', placeholder: 'error text', value: filter.error, size: 18 }),
    since: el('select', { id: 'f-since' }, ['', '15m', '1h', '24h', '7d'].map((v) =>
      el('option', { value: v, selected: v === filter.since }, v ? 'last ' + v : 'any time'))),
  };
  const form = el('form', {
    class: 'filters', id: 'filters',
    onsubmit: (ev) => {
      ev.preventDefault();
      go({ match: inputs.match.value, id: inputs.id.value, error: inputs.error.value,
        since: inputs.since.value, offset: '' });
    },
  }, inputs.match, inputs.id, inputs.error, inputs.since, el('button', { type: 'submit', id: 'f-apply' }, 'Search'));
  const rows = page.jobs.map((j) => el('tr', { 'data-job': j.id },
    el('td', { class: 'hex' }, el('a', { href: '#/job/' + encodeURIComponent(j.id) }, j.id)),
    nameCell(j), el('td', { class: 'num' }, j.attempt || '0'), el('td', {}, fmtTime(j.time_ms)),
    el('td', { class: 'failed' }, whatText(j))));
  const pages = Math.max(1, Math.ceil(page.total / PAGE));
  const current = Math.floor(offset / PAGE) + 1;
  const pager = el('div', { class: 'bar' },
    el('span', { id: 'total', 'data-total': page.total }, page.total + ' matching'),
    el('button', { id: 'prev', disabled: offset === 0, onclick: () => go({ offset: String(Math.max(0, offset - PAGE)) }) }, 'Newer'),
    el('span', {}, 'page ' + current + ' of ' + pages),
    el('button', { id: 'next', disabled: offset + PAGE >= page.total, onclick: () => go({ offset: String(offset + PAGE) }) }, 'Older'));
  const confirmBox = el('div', { id: 'confirm' });
  const result = el('div', { class: 'result', id: 'result' });
  const bulk = [];
  if (canAct() && (state === 'failed' || state === 'done') && page.total > 0) {
    const ask = async (action) => {
      // The set shown now, fetched whole: exactly these jobs are acted on,
      // whatever fails meanwhile.
      let all;
      try {
        const p = new URLSearchParams(q);
        p.set('ids', '1');
        p.set('offset', '0');
        all = await api('/api/queues/' + encodeURIComponent(name) + '/jobs?' + p.toString());
      } catch (e) { showError(e); return; }
      const verb = action === 'retry' ? 'Retry' : 'Delete the records of';
      confirmBox.replaceChildren(el('div', { class: 'confirm' },
        verb + ' these ' + all.ids.length + ' ' + state + ' jobs? ',
        el('button', {
          id: 'confirm-yes', class: action === 'retry' ? 'primary' : 'danger',
          onclick: async () => {
            confirmBox.replaceChildren();
            try {
              const r = await api('/api/queues/' + encodeURIComponent(name) + '/' + action,
                { method: 'POST', body: { ids: all.ids, state } });
              result.textContent = action === 'retry'
                ? 'Retried ' + r.retried.length + ', asked ' + Object.keys(r.asked).length +
                  ' of the instance holding the file, ' + Object.keys(r.errors).length + ' could not be'
                : 'Deleted ' + r.deleted;
              if (action === 'retry') {
                for (const [id, why] of Object.entries(r.errors)) result.append(el('div', { class: 'failed' }, id + ': ' + why));
              }
              setTimeout(() => route(), 300);
            } catch (e) { showError(e); }
          },
        }, 'Confirm ' + all.ids.length),
        el('button', { id: 'confirm-no', onclick: () => confirmBox.replaceChildren() }, 'Cancel')));
    };
    if (state === 'failed') bulk.push(el('button', { id: 'retry-all', onclick: () => ask('retry') }, 'Retry all ' + page.total + ' matching'));
    bulk.push(el('button', { id: 'delete-all', class: 'danger', onclick: () => ask('delete') }, 'Delete all ' + page.total + ' matching'));
  }
  const head = el('div', { class: 'bar' }, el('h1', {}, 'Queue ' + name),
    qs.paused ? el('span', { class: 'paused' }, 'paused') : null,
    pauseButton(Object.assign({ name }, qs), () => route()));
  view.replaceChildren(head, tabs, form, pager, el('div', { class: 'bar' }, bulk), confirmBox, result,
    el('table', { id: 'jobs' },
      el('thead', {}, el('tr', {}, el('th', {}, 'Job'), el('th', {}, 'Name'), el('th', { class: 'num' }, 'Attempt'),
        el('th', {}, 'Time'), el('th', {}, 'Result'))),
      el('tbody', {}, rows)));
}

// ------------------------------------------------------------------ job view

const TIME_FIELDS = new Set(['enq', 'claimed', 'started', 'finished', 'due']);
// Shown elsewhere on the page; inode and mtime_ns are in `ident` (whose
// digits a JavaScript number would round).
const BLOCK_FIELDS = new Set(['stderr', 'response', 'history', 'inode', 'mtime_ns']);

function isHistoryKey(k) { return /^(attempt|stderr|response)\.\d+$/.test(k); }

async function renderJob(view, id) {
  const gen = generation;
  let job;
  try {
    job = await api('/api/jobs/' + encodeURIComponent(id));
    if (gen !== generation) return;
    setRedis(true);
  } catch (e) {
    if (gen !== generation) return;
    if (e.status === 404) { view.replaceChildren(el('h1', {}, 'No job ' + id)); return; }
    showError(e);
    return;
  }
  const fields = el('dl', { class: 'fields', id: 'fields' });
  for (const k of Object.keys(job).sort()) {
    if (BLOCK_FIELDS.has(k) || isHistoryKey(k) || typeof job[k] === 'object') continue;
    const v = TIME_FIELDS.has(k) && typeof job[k] === 'number' ? fmtTime(job[k]) + ' (' + job[k] + ')' : String(job[k]);
    fields.append(el('dt', {}, k), el('dd', { 'data-field': k }, v));
  }
  const parts = [
    el('h1', { id: 'job-name' }, job.name === undefined ? id : job.name),
    job.name_hex ? el('div', { class: 'hex' }, 'name bytes: ' + job.name_hex) : null,
    el('div', { class: 'bar' },
      el('a', { href: queueHash(job.queue, { state: job.state }) }, '← queue ' + job.queue),
      el('span', {}, 'state: ' + (job.state || '?')),
      job.file_now ? el('span', { id: 'file-now' }, 'file now: ' + job.file_now) : null,
      canAct() && job.state === 'failed' ? el('button', {
        id: 'retry-one', class: 'primary',
        onclick: async () => {
          try {
            const r = await api('/api/jobs/' + encodeURIComponent(id) + '/retry', { method: 'POST', body: {} });
            const asked = Object.values(r.asked);
            setBanner(r.retried.length ? 'Retried'
              : asked.length ? 'Asked ' + asked[0] + ', which holds the file, to retry it'
                : 'Could not retry: ' + Object.values(r.errors).join('; '), true);
            route();
          } catch (e) { showError(e); }
        },
      }, 'Retry') : null),
    el('h2', {}, 'Record'), fields,
  ];
  if (job.stderr) parts.push(el('h2', {}, 'Standard error (last run, tail)'), el('pre', { id: 'stderr' }, job.stderr));
  if (job.response) parts.push(el('h2', {}, 'HTTP response (last run)'), el('pre', { id: 'response' }, job.response));
  if (job.history && job.history.length) {
    parts.push(el('h2', {}, 'Failed attempts'));
    for (const h of job.history) {
      parts.push(el('div', { class: 'attempt', 'data-attempt': h.attempt },
        el('div', {}, el('strong', {}, 'attempt ' + h.attempt + ': '), h.summary || ''),
        h.stderr ? el('pre', {}, h.stderr) : null,
        h.response ? el('pre', {}, h.response) : null));
    }
  }
  view.replaceChildren(...parts.filter((p) => p));
}

// ------------------------------------------------------------------ routing

async function route() {
  generation += 1;
  clearTimeout(refreshTimer);
  const view = document.getElementById('view');
  const hash = location.hash || '#/';
  const path = hash.split('?')[0];
  await loadSession();
  let m;
  if ((m = path.match(/^#\/queue\/([^/]+)$/))) {
    const name = decodeURIComponent(m[1]);
    const params = queryOf(hash);
    // Drawn once (and after each action): a refresh would take the filter
    // being typed and a confirmation being read away.
    renderQueue(view, name, params);
  } else if ((m = path.match(/^#\/job\/([^/]+)$/))) {
    const id = decodeURIComponent(m[1]);
    renderJob(view, id);
  } else {
    every(1000, () => renderOverview(view));
  }
}

document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = document.getElementById('token').value.trim();
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    document.getElementById('token').value = '';
    route();
  });
  document.getElementById('token-forget').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    route();
  });
  window.addEventListener('hashchange', () => {
    if (bannerKind === 'message') setBanner('');
    route();
  });
  route();
});
