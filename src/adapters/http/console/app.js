// The agentos web console. Everything it shows comes from the routes every client uses:
// /api/session and /api/signin for the browser session, /api/studio/command for anything that
// changes state (so it previews first and runs only when confirmed), and the plain form of
// /mcp ({"tool", "input"}) for reading. Text from the server is only ever set as text.
'use strict';

const S = { csrf: null, session: null, advanced: false, history: [], historyAt: 0, answers: [] };
const PAGE_SIZE = 20;

// ------------------------------------------------------------------ DOM and HTTP helpers
function h(tag, props, ...kids) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'value' || key === 'checked') el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}
const $ = (id) => document.getElementById(id);
const json = (value) => JSON.stringify(value, null, 2);

function messageOf(body, status) {
  if (body && body.success === false && typeof body.error === 'string') return body.error;
  if (body && typeof body.message === 'string') return body.message;
  if (body && typeof body.error === 'string') return body.error;
  return status ? `agentos answered HTTP ${status}` : 'agentos did not answer';
}

async function request(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && S.csrf) headers['X-CSRF-Token'] = S.csrf;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    return { status: 0, body: { error: 'unreachable', message: `agentos did not answer (${e.message})` } };
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = { error: 'bad_response', message: `agentos answered HTTP ${response.status} without JSON` };
  }
  if (response.status === 401 && S.session && path !== '/api/signin') signedOut('Your session ended; sign in again.');
  return { status: response.status, body: data };
}

// A read through the plain form of POST /mcp: {ok, result} or {ok: false, message}.
async function read(tool, input) {
  const { status, body } = await request('POST', '/mcp', { tool, input: input || {} });
  if (body && body.success === true) return { ok: true, result: body.result };
  return { ok: false, message: messageOf(body, status) };
}

// One studio command; the answer always has a kind.
async function studio(command, extra) {
  const payload = { command, advancedMode: S.advanced };
  if (extra && extra.confirmToken) payload.confirmToken = extra.confirmToken;
  const { status, body } = await request('POST', '/api/studio/command', payload);
  if (body && body.kind) return body;
  return { kind: 'error', summary: messageOf(body, status) };
}

// ------------------------------------------------------------------ shared pieces
function badge(text, cls) {
  return h('span', { class: `badge ${cls || ''}` }, text);
}

function note(text, cls) {
  return h('p', { class: cls || 'muted', role: cls === 'error' ? 'alert' : null }, text);
}

function busy(button, running) {
  button.disabled = running;
  button.setAttribute('aria-busy', running ? 'true' : 'false');
}

// The card of one studio answer: summary, result, the same call as API, and for a preview the
// buttons that run it (once) or drop it.
function answerCard(command, answer, onDone) {
  const card = h('article', { class: 'card answer', 'data-kind': answer.kind });
  const fill = (a) => {
    card.replaceChildren();
    card.dataset.kind = a.kind;
    card.append(
      h('header', {}, badge(a.kind, `kind-${a.kind}`), h('span', { class: 'command' }, command)),
      h('p', { class: a.kind === 'error' ? 'error summary' : 'summary' }, a.summary || ''),
    );
    if (a.kind === 'help' && a.result && Array.isArray(a.result.commands)) card.append(helpTable(a.result.commands));
    else if (a.result !== undefined && a.result !== null) card.append(h('pre', { class: 'result' }, json(a.result)));
    if (a.kind === 'preview' && a.confirmToken) {
      const confirm = h('button', { type: 'button', class: 'primary confirm' }, 'Confirm');
      const cancel = h('button', { type: 'button', class: 'cancel' }, 'Cancel');
      confirm.addEventListener('click', async () => {
        busy(confirm, true);
        cancel.disabled = true;
        const done = await studio(command, { confirmToken: a.confirmToken });
        fill(done);
        if (onDone) onDone(done);
      });
      cancel.addEventListener('click', () => {
        fill({ kind: 'error', summary: 'Cancelled: nothing was changed.', snippet: a.snippet });
      });
      card.append(h('div', { class: 'actions' }, confirm, cancel));
      queueMicrotask(() => confirm.focus());
    }
    if (a.snippet) {
      card.append(h('details', {}, h('summary', {}, 'The same call through the API'), h('pre', { class: 'snippet' }, a.snippet)));
    }
  };
  fill(answer);
  return card;
}

function helpTable(commands) {
  return h('div', { class: 'table' }, h('table', {},
    h('thead', {}, h('tr', {}, h('th', {}, 'Command'), h('th', { class: 'wide' }, 'Usage'), h('th', {}, 'What it does'))),
    h('tbody', {}, commands.map((c) => h('tr', {},
      h('td', {}, h('a', { href: '#/studio', class: 'name', onclick: (event) => prefill(event, `${c.command} `) }, c.command)),
      h('td', { class: 'wide name' }, c.usage || ''),
      h('td', {}, c.summary || ''),
    ))),
  ));
}

// A command name clicked in help goes to the command line, ready for its words.
function prefill(event, text) {
  const input = $('command');
  if (!input) {
    S.prefill = text;
    return;
  }
  event.preventDefault();
  input.value = text;
  input.focus();
}

function pager(onPrevious, onNext, label) {
  const prev = h('button', { type: 'button', class: 'prev', disabled: !onPrevious }, 'Previous');
  const next = h('button', { type: 'button', class: 'next', disabled: !onNext }, 'Next');
  if (onPrevious) prev.addEventListener('click', onPrevious);
  if (onNext) next.addEventListener('click', onNext);
  return h('div', { class: 'pager' }, prev, next, label ? h('span', { class: 'muted' }, label) : null);
}

function advancedToggle() {
  const box = h('input', { type: 'checkbox', id: 'advanced', checked: S.advanced });
  box.addEventListener('change', () => { S.advanced = box.checked; });
  return h('label', { class: 'check', for: 'advanced' }, box, 'Advanced mode (raw SQL, publishing code)');
}

// ------------------------------------------------------------------ sign in
// The same form signs in or, for a first visit, creates an account (POST /api/signup, when the
// server allows sign-up); either way the browser session and its CSRF token come back.
function signInView(message, creating) {
  const email = h('input', { type: 'email', id: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = h('input', {
    type: 'password', id: 'password', name: 'password', required: true,
    autocomplete: creating ? 'new-password' : 'current-password', minlength: creating ? 8 : null,
  });
  const status = h('p', { id: 'signin-status', role: 'alert', class: 'error' }, message || '');
  const submit = h('button', { type: 'submit', class: 'primary' }, creating ? 'Create account' : 'Sign in');
  const other = h('button', { type: 'button', id: 'switch-form' }, creating ? 'I have an account' : 'Create an account');
  other.addEventListener('click', () => signInView('', !creating));
  const form = h('form', { class: 'stack', id: 'signin', 'aria-labelledby': 'signin-title' },
    h('div', { class: 'field' }, h('label', { for: 'email' }, 'Email'), email),
    h('div', { class: 'field' }, h('label', { for: 'password' }, 'Password'), password,
      creating ? h('small', {}, 'At least 8 characters.') : null),
    h('div', { class: 'row' }, submit, other), status);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    busy(submit, true);
    status.textContent = '';
    const path = creating ? '/api/signup' : '/api/signin';
    const { status: code, body } = await request('POST', path, { email: email.value, password: password.value });
    busy(submit, false);
    if ((code === 200 || code === 201) && body && body.csrfToken) {
      S.csrf = body.csrfToken;
      await loadSession();
      if (!location.hash || location.hash === '#/signin') location.hash = '#/studio';
      render();
    } else {
      status.textContent = messageOf(body, code);
      password.select();
    }
  });
  show(h('section', {}, h('h1', { id: 'signin-title' }, creating ? 'Create an account' : 'Sign in'),
    h('p', { class: 'muted' }, creating
      ? 'An account is an operator: its own agent, and the agents it registers.'
      : 'With the email and password of your agentos account.'),
    form));
  email.focus();
}

async function loadSession() {
  const { status, body } = await request('GET', '/api/session');
  if (status === 200 && body && body.authenticated && body.session && body.session.via === 'session') {
    S.session = body.session;
    S.csrf = body.session.csrfToken;
  } else {
    S.session = null;
  }
  $('nav').hidden = !S.session;
  $('signout').hidden = !S.session;
  $('who').textContent = S.session ? `${S.session.agentName} (${S.session.role})` : '';
}

function signedOut(message) {
  S.session = null;
  S.csrf = null;
  $('nav').hidden = true;
  $('signout').hidden = true;
  $('who').textContent = '';
  signInView(message);
}

// ------------------------------------------------------------------ studio
function studioView() {
  const input = h('input', {
    type: 'text', id: 'command', class: 'grow command', autocomplete: 'off', spellcheck: 'false',
    placeholder: 'help', 'aria-describedby': 'command-hint', value: S.prefill || '',
  });
  S.prefill = '';
  const run = h('button', { type: 'submit', class: 'primary' }, 'Run');
  const answers = h('div', { id: 'answers', 'aria-live': 'polite' }, S.answers);
  const form = h('form', { class: 'row', id: 'studio-form' },
    h('label', { for: 'command' }, 'Command'), input, run);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const command = input.value.trim();
    if (!command) return;
    if (S.history[S.history.length - 1] !== command) S.history.push(command);
    S.historyAt = S.history.length;
    busy(run, true);
    const answer = await studio(command);
    busy(run, false);
    const card = answerCard(command, answer);
    S.answers.unshift(card);
    S.answers.length = Math.min(S.answers.length, 30);
    answers.prepend(card);
    if (answer.kind !== 'preview') input.select();
  });
  input.addEventListener('keydown', (event) => {
    if (event.key !== 'ArrowUp' && event.key !== 'ArrowDown') return;
    event.preventDefault();
    S.historyAt = Math.max(0, Math.min(S.history.length, S.historyAt + (event.key === 'ArrowUp' ? -1 : 1)));
    input.value = S.history[S.historyAt] || '';
  });
  show(h('section', {}, h('h1', {}, 'Studio'),
    form,
    h('p', { id: 'command-hint', class: 'hint' },
      'Type ', h('kbd', {}, 'help'), ' for the commands. Reading answers at once; a change answers a preview ',
      'to confirm. ↑ and ↓ walk your history.'),
    advancedToggle(),
    answers));
  input.focus();
}

// ------------------------------------------------------------------ tools
async function toolsView(params) {
  const filter = h('input', { type: 'search', id: 'tool-filter', class: 'grow', placeholder: 'name or title contains…', value: params.contains || '' });
  const form = h('form', { class: 'row', role: 'search' }, h('label', { for: 'tool-filter' }, 'Filter'), filter,
    h('button', { type: 'submit' }, 'Filter'));
  const list = h('div', { id: 'tool-list' }, note('Loading…'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    load([]);
  });
  // `trail` holds the cursors of the pages before this one, so Previous works without a cursor
  // going backwards.
  const load = async (trail) => {
    const input = { limit: PAGE_SIZE };
    if (filter.value.trim()) input.contains = filter.value.trim();
    if (trail.length) input.cursor = trail[trail.length - 1];
    const got = await read('agentos.tools_list', input);
    if (!got.ok) return list.replaceChildren(note(got.message, 'error'));
    const { tools, total, nextCursor } = got.result;
    const first = trail.length * PAGE_SIZE;
    list.replaceChildren(
      h('p', { class: 'muted', id: 'tool-count' }, total === 0 ? 'No tool matches.' : `${first + 1}–${first + tools.length} of ${total} tools`),
      h('ul', { class: 'plain' }, tools.map((tool) => h('li', {},
        h('div', { class: 'row' }, h('a', { class: 'name', href: `#/tools/${encodeURIComponent(tool.name)}` }, tool.name),
          tool.readOnly ? badge('reads', 'st-ok') : badge('changes', 'st-pending'), badge(tool.origin)),
        h('p', { class: 'desc' }, tool.title ? `${tool.title}: ${firstLine(tool.description)}` : firstLine(tool.description))))),
      pager(trail.length ? () => load(trail.slice(0, -1)) : null, nextCursor ? () => load([...trail, nextCursor]) : null),
    );
  };
  show(h('section', {}, h('h1', {}, 'Tools'), form, list));
  await load([]);
}

function firstLine(text) {
  const line = String(text || '').split('\n')[0];
  return line.length > 240 ? `${line.slice(0, 239)}…` : line;
}

async function toolView(name) {
  show(h('section', {}, h('h1', { class: 'name' }, name), note('Loading…')));
  const got = await read('agentos.tools_describe', { name });
  if (!got.ok) return show(h('section', {}, h('h1', { class: 'name' }, name), note(got.message, 'error'), h('a', { href: '#/tools' }, 'All tools')));
  const tool = got.result;
  const hints = tool.annotations || {};
  const form = schemaForm(tool.inputSchema || {});
  const call = h('button', { type: 'submit', class: 'primary', id: 'call' }, hints.readOnlyHint ? 'Call' : 'Preview call');
  const out = h('div', { id: 'call-answers', 'aria-live': 'polite' });
  const status = h('p', { class: 'error', role: 'alert' });
  const element = h('form', { class: 'stack', id: 'tool-form' }, form.fields, h('div', { class: 'row' }, call), status);
  element.addEventListener('submit', async (event) => {
    event.preventDefault();
    status.textContent = '';
    let input;
    try {
      input = form.value();
    } catch (e) {
      status.textContent = e.message;
      return;
    }
    busy(call, true);
    // Through the studio's `call`, so a tool that changes something previews first.
    const command = `call ${tool.name} ${JSON.stringify(input)}`;
    const answer = await studio(command);
    busy(call, false);
    out.prepend(answerCard(command, answer));
  });
  show(h('section', {},
    h('p', {}, h('a', { href: '#/tools' }, '← All tools')),
    h('h1', { class: 'name' }, tool.name),
    h('div', { class: 'row' }, tool.title ? h('strong', {}, tool.title) : null, badge(tool.origin),
      hints.readOnlyHint ? badge('reads only', 'st-ok') : badge('changes state: previews first', 'st-pending'),
      hints.destructiveHint ? badge('destructive', 'st-error') : null),
    h('p', { class: 'desc' }, tool.description),
    h('h2', {}, 'Try it'),
    element,
    advancedToggle(),
    out,
    h('details', {}, h('summary', {}, 'Input and output schemas'), h('pre', {}, json({ inputSchema: tool.inputSchema, outputSchema: tool.outputSchema }))),
  ));
  const first = element.querySelector('input, select, textarea');
  (first || call).focus();
}

// A form for a JSON Schema object: one field per property, typed by the schema; anything richer
// than a scalar is edited as JSON. `value()` gives the input object or throws naming the field.
function schemaForm(schema) {
  const defs = schema.$defs || schema.definitions || {};
  const deref = (s) => {
    let seen = 0;
    while (s && typeof s.$ref === 'string' && seen++ < 8) s = defs[s.$ref.split('/').pop()] || {};
    return s || {};
  };
  const props = schema.properties || {};
  const required = new Set(schema.required || []);
  const readers = [];
  const fields = Object.entries(props).map(([name, raw]) => {
    const s = deref(raw);
    const id = `field-${name}`;
    const type = typeOf(s, deref);
    const must = required.has(name);
    const label = h('label', { for: id }, name, must ? h('span', { class: 'muted' }, ' (required)') : null);
    const help = s.description || raw.description;
    let control;
    let readValue;
    const choices = s.enum || (Array.isArray(s.oneOf) && s.oneOf.every((o) => 'const' in o) ? s.oneOf.map((o) => o.const) : null);
    if (choices) {
      control = h('select', { id, name }, must ? null : h('option', { value: '' }, '(not set)'),
        choices.map((c, i) => h('option', { value: String(i) }, typeof c === 'string' ? c : JSON.stringify(c))));
      readValue = () => (control.value === '' ? undefined : choices[Number(control.value)]);
    } else if (type === 'boolean') {
      control = h('select', { id, name }, h('option', { value: '' }, '(not set)'), h('option', { value: 'true' }, 'true'), h('option', { value: 'false' }, 'false'));
      readValue = () => (control.value === '' ? undefined : control.value === 'true');
    } else if (type === 'integer' || type === 'number') {
      control = h('input', { type: 'number', id, name, step: type === 'integer' ? '1' : 'any', min: s.minimum, max: s.maximum });
      readValue = () => (control.value === '' ? undefined : Number(control.value));
    } else if (type === 'string') {
      const long = !(s.maxLength <= 200);
      control = long ? h('textarea', { id, name, rows: 2 }) : h('input', { type: 'text', id, name, autocomplete: 'off' });
      readValue = () => (control.value === '' ? undefined : control.value);
    } else {
      control = h('textarea', { id, name, rows: 3, placeholder: 'JSON' });
      readValue = () => {
        if (control.value.trim() === '') return undefined;
        try {
          return JSON.parse(control.value);
        } catch (e) {
          throw new Error(`${name}: not JSON (${e.message})`);
        }
      };
    }
    if (help) control.setAttribute('aria-describedby', `${id}-help`);
    readers.push([name, readValue, must]);
    return h('div', { class: 'field' }, label, control, help ? h('small', { id: `${id}-help` }, help) : null);
  });
  return {
    fields: fields.length ? fields : [note('This tool takes no input.')],
    value() {
      const input = {};
      for (const [name, readValue, must] of readers) {
        const value = readValue();
        if (value === undefined) {
          if (must) throw new Error(`${name} is required`);
        } else input[name] = value;
      }
      return input;
    },
  };
}

function typeOf(s, deref) {
  const plain = (t) => (Array.isArray(t) ? t.find((x) => x !== 'null') : t);
  if (s.type) return plain(s.type);
  for (const key of ['anyOf', 'oneOf']) {
    if (Array.isArray(s[key])) {
      const kinds = s[key].map((o) => plain(deref(o).type)).filter((t) => t && t !== 'null');
      if (kinds.length === 1) return kinds[0];
    }
  }
  return 'json';
}

// ------------------------------------------------------------------ skills
async function skillsView() {
  const search = h('input', { type: 'search', id: 'skill-search', class: 'grow', placeholder: 'words in name, description, tags…' });
  const form = h('form', { class: 'row', role: 'search' }, h('label', { for: 'skill-search' }, 'Search'), search,
    h('button', { type: 'submit' }, 'Search'));
  const installed = h('div', { id: 'installed' }, note('Loading…'));
  const market = h('div', { id: 'market' }, note('Loading…'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    loadMarket(1);
  });
  const loadInstalled = async (done) => {
    const got = await read('agentos.skills_installed', {});
    if (!got.ok) return installed.replaceChildren(note(got.message, 'error'));
    const skills = got.result.installedSkills || [];
    installed.replaceChildren(done ? h('p', { role: 'status' }, done.summary) : '',
      skills.length === 0 ? note('No skill installed yet.') : h('ul', { class: 'plain' }, skills.map((s) => h('li', { 'data-slug': s.skill.slug },
      h('div', { class: 'row' }, h('strong', {}, s.skill.name), h('span', { class: 'muted' }, `${s.skill.slug} ${s.version}`)),
      h('div', { class: 'row' }, 'Tools: ', s.tools.map((t) => h('a', { class: 'name', href: `#/tools/${encodeURIComponent(t)}` }, t))),
      mutating(`skills uninstall ${s.skill.slug}`, 'Uninstall', loadInstalled)))));
  };
  const loadMarket = async (page) => {
    const input = { page, limit: PAGE_SIZE };
    if (search.value.trim()) input.search = search.value.trim();
    const got = await read('agentos.skills_search', input);
    if (!got.ok) return market.replaceChildren(note(got.message, 'error'));
    const { skills, pagination } = got.result;
    const pages = Math.max(1, Math.ceil(pagination.total / pagination.limit));
    market.replaceChildren(
      skills.length === 0 ? note('No skill matches.') : h('ul', { class: 'plain' }, skills.map((s) => h('li', { 'data-slug': s.slug },
        h('div', { class: 'row' }, h('strong', {}, s.name), h('span', { class: 'muted' }, `${s.slug} ${s.latestVersion} by ${s.author}`),
          badge(s.category), h('span', { class: 'muted' }, `${s.installs} installs`)),
        h('p', { class: 'desc' }, s.description),
        mutating(`skills install ${s.slug}`, 'Install', loadInstalled)))),
      pager(page > 1 ? () => loadMarket(page - 1) : null, page < pages ? () => loadMarket(page + 1) : null,
        `page ${page} of ${pages} (${pagination.total} skills)`),
    );
  };
  show(h('section', {}, h('h1', {}, 'Skills'), h('h2', {}, 'Installed for you'), installed,
    h('h2', {}, 'Marketplace'), form, market));
  await Promise.all([loadInstalled(), loadMarket(1)]);
}

// A button that runs a studio command through its preview: the preview card appears under it
// with Confirm and Cancel; `after` runs once the command has run.
function mutating(command, label, after, cls) {
  const button = h('button', { type: 'button', class: cls || '' }, label);
  const slot = h('div', { 'aria-live': 'polite' });
  const actions = h('div', { class: 'actions' }, button, slot);
  button.addEventListener('click', async () => {
    busy(button, true);
    const answer = await studio(command);
    busy(button, false);
    slot.replaceChildren(answerCard(command, answer, (done) => {
      if (done.kind === 'result' && after) after(done, actions);
    }));
  });
  return actions;
}

// ------------------------------------------------------------------ approvals
async function approvalsView() {
  const pendingOnly = h('input', { type: 'checkbox', id: 'pending-only', checked: true });
  const list = h('div', { id: 'approval-list' }, note('Loading…'));
  // Once decided, an approval's buttons go; its answer card stays to show what happened.
  const decided = (done, actions) => {
    const item = actions.closest('li');
    const status = (done.result && typeof done.result.status === 'string' && done.result.status) || 'decided';
    const shown = item.querySelector('.badge');
    shown.textContent = status;
    shown.className = `badge st-${status}`;
    for (const button of item.querySelectorAll('button:not(.confirm):not(.cancel)')) button.disabled = true;
  };
  const load = async () => {
    const input = { limit: 50 };
    if (pendingOnly.checked) input.status = 'pending';
    const got = await read('agentos.approvals_list', input);
    if (!got.ok) return list.replaceChildren(note(got.message, 'error'));
    const approvals = got.result.approvals || [];
    const more = approvals.length === input.limit ? note(`The newest ${input.limit}; decide these to see older ones.`) : null;
    list.replaceChildren(more, approvals.length === 0 ? note(pendingOnly.checked ? 'Nothing waits for a decision.' : 'No approvals yet.')
      : h('ul', { class: 'plain' }, approvals.map((a) => h('li', { 'data-id': a.id },
        h('div', { class: 'row' }, badge(a.status, `st-${a.status}`), h('span', { class: 'name' }, a.tool),
          h('span', { class: 'muted' }, `by ${a.agentId}, ${a.createdAt}`)),
        a.preview ? h('pre', {}, a.preview) : null,
        a.status === 'pending' ? h('p', { class: 'muted' }, `Expires ${a.expiresAt} if undecided.`) : null,
        a.note ? h('p', {}, `Note: ${a.note}`) : null,
        a.error ? h('p', { class: 'error' }, a.error) : null,
        a.status === 'pending' ? h('div', { class: 'row' },
          mutating(`approvals approve ${a.id}`, 'Approve', decided, 'primary'),
          mutating(`approvals deny ${a.id}`, 'Deny', decided, 'danger')) : null))));
  };
  pendingOnly.addEventListener('change', load);
  show(h('section', {}, h('h1', {}, 'Approvals'),
    h('p', { class: 'muted' }, 'Calls to tools that need a person’s approval wait here. Approving runs the call as the agent that made it.'),
    h('div', { class: 'row' }, h('label', { class: 'check', for: 'pending-only' }, pendingOnly, 'Pending only'),
      h('button', { type: 'button', onclick: () => load() }, 'Refresh')),
    list));
  await load();
}

// ------------------------------------------------------------------ ops
async function opsView() {
  const health = h('div', { id: 'health' }, note('Loading…'));
  const metrics = h('div', { id: 'metrics' }, note('Loading…'));
  const crew = h('div', { id: 'crew' }, note('Loading…'));
  const traces = h('div', { id: 'traces' }, note('Loading…'));
  const audit = h('div', { id: 'audit' }, note('Loading…'));
  show(h('section', {}, h('h1', {}, 'Ops'),
    h('h2', {}, 'Health'), health, h('h2', {}, 'Metrics'), metrics, h('h2', {}, 'MCP servers'), crew,
    h('h2', {}, 'Recent traces'), traces, h('h2', {}, 'Recent audit'), audit));
  await Promise.all([
    loadHealth(health), loadMetrics(metrics), loadCrew(crew),
    pagedTable(traces, 'agentos.traces_query', 'traces', ['Started', 'Tool', 'Agent', 'Status', 'Duration'], (t) => [
      h('a', { href: `#/trace/${t.traceId}` }, t.started), h('span', { class: 'name' }, t.tool), t.agentId,
      badge(t.status, `st-${t.status}`), `${ms(t.durationUs)} ms`]),
    pagedTable(audit, 'agentos.audit_query', 'records', ['Time', 'Tool', 'Agent', 'Outcome', 'Latency'], (r) => [
      r.time, h('span', { class: 'name' }, r.tool), r.agentId, badge(r.outcome, r.outcome === 'ok' ? 'st-ok' : 'st-error'), `${ms(r.latencyUs)} ms`]),
  ]);
}

const ms = (us) => (Number(us || 0) / 1000).toFixed(us < 10000 ? 2 : 0);

async function loadHealth(slot) {
  const got = await read('agentos.health', {});
  if (!got.ok) return slot.replaceChildren(note(got.message, 'error'));
  const services = Object.entries(got.result.services || {});
  slot.replaceChildren(h('div', { class: 'row' }, 'Overall ', badge(got.result.status, `st-${got.result.status}`)),
    h('div', { class: 'table' }, h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Service'), h('th', {}, 'Status'), h('th', { class: 'num' }, 'Response ms'), h('th', { class: 'wide' }, 'Detail'))),
      h('tbody', {}, services.map(([name, s]) => h('tr', {}, h('td', { class: 'name' }, name), h('td', {}, badge(s.status, `st-${s.status}`)),
        h('td', { class: 'num' }, s.responseTime ?? ''), h('td', { class: 'wide' }, s.error || s.message || '')))))));
}

async function loadMetrics(slot) {
  const got = await read('agentos.ops_metrics', {});
  if (!got.ok) return slot.replaceChildren(note(got.message, 'error'));
  const m = got.result.summary || {};
  const stat = (label, value) => h('div', {}, h('dt', {}, label), h('dd', {}, value));
  const latency = m.latency || {};
  slot.replaceChildren(h('dl', { class: 'stats' },
    stat('Requests', `${m.requests?.total ?? 0}`), stat('Requests / min', `${m.requests?.perMinute ?? 0}`),
    stat('Tool calls', `${m.toolCalls ?? 0}`), stat('Errors', `${m.errors?.total ?? 0}`),
    stat('Latency p50', `${latency.p50 ?? 0} ms`), stat('Latency p95', `${latency.p95 ?? 0} ms`),
    stat('Latency p99', `${latency.p99 ?? 0} ms`), stat('Tools', `${m.tools ?? 0}`),
    stat('Uptime', `${Math.round(m.uptime ?? 0)} s`)));
}

async function loadCrew(slot) {
  const got = await read('agentos.crew_status', {});
  if (!got.ok) return slot.replaceChildren(note(got.message));
  const { summary = {}, servers, requiresAuthForDetails } = got.result;
  const stat = (label, value) => h('div', {}, h('dt', {}, label), h('dd', {}, `${value ?? 0}`));
  slot.replaceChildren(
    h('dl', { class: 'stats' }, stat('Servers', summary.servers), stat('Up', summary.up), stat('Restarting', summary.restarting),
      stat('Down', summary.down), stat('Disabled', summary.disabled), stat('With standby', summary.withStandby)),
    Array.isArray(servers) && servers.length ? h('div', { class: 'table' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Server'), h('th', {}, 'Health'), h('th', { class: 'wide' }, 'Endpoint'),
        h('th', { class: 'num' }, 'Restarts'), h('th', {}, 'Last failure'))),
      h('tbody', {}, servers.map((s) => h('tr', {}, h('td', { class: 'name' }, s.name), h('td', {}, badge(s.health, `st-${s.health}`)),
        h('td', { class: 'wide name' }, s.active), h('td', { class: 'num' }, s.restarts),
        h('td', {}, s.lastFailure ? `${s.lastFailure.at}: ${s.lastFailure.reason}` : '')))))) : null,
    requiresAuthForDetails ? note('Per-server details are for ops-admins.') : null);
}

// A table of a paged query tool (newest first, `nextCursor` to older pages).
async function pagedTable(slot, tool, field, heads, row, trail) {
  trail = trail || [];
  const input = { limit: PAGE_SIZE };
  if (trail.length) input.cursor = trail[trail.length - 1];
  const got = await read(tool, input);
  if (!got.ok) return slot.replaceChildren(note(got.message, 'error'));
  const rows = got.result[field] || [];
  const again = (t) => pagedTable(slot, tool, field, heads, row, t);
  slot.replaceChildren(rows.length === 0 ? note('Nothing yet.') : h('div', { class: 'table' }, h('table', {},
    h('thead', {}, h('tr', {}, heads.map((head, i) => h('th', { class: i === 2 ? 'wide' : null }, head)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, row(r).map((cell, i) => h('td', { class: i === 2 ? 'wide' : null }, cell))))))),
  pager(trail.length ? () => again(trail.slice(0, -1)) : null, got.result.nextCursor ? () => again([...trail, got.result.nextCursor]) : null,
    trail.length ? `older page ${trail.length + 1}` : 'newest first'));
}

async function traceView(id) {
  show(h('section', {}, h('h1', {}, 'Trace'), note('Loading…')));
  const got = await read('agentos.traces_query', { traceId: id });
  const back = h('p', {}, h('a', { href: '#/ops' }, '← Ops'));
  if (!got.ok || !got.result.trace) return show(h('section', {}, back, h('h1', {}, 'Trace'), note(got.ok ? `no trace ${id}` : got.message, 'error')));
  const t = got.result.trace;
  const total = Math.max(1, t.durationUs);
  const spanList = (spans, root) => h('ul', { class: root ? 'spans root' : 'spans' }, spans.map((s) => h('li', { class: 'span' },
    h('div', { class: 'span-head' }, h('strong', { class: 'name' }, s.name), badge(s.layer), badge(s.status, `st-${s.status}`),
      h('span', { class: 'muted' }, `${ms(s.durationUs)} ms`)),
    h('span', { class: `bar w${Math.min(10, Math.round((10 * s.durationUs) / total))}` }),
    s.error ? h('p', { class: 'error' }, s.error) : null,
    Object.keys(s.attributes || {}).length ? h('details', {}, h('summary', {}, 'Attributes'), h('pre', {}, json(s.attributes))) : null,
    s.children && s.children.length ? spanList(s.children, false) : null)));
  show(h('section', {}, back, h('h1', {}, 'Trace ', h('span', { class: 'name' }, t.traceId)),
    h('dl', { class: 'stats' },
      ...[['Tool', t.tool], ['Agent', t.agentId], ['Door', t.root], ['Status', t.status], ['Duration', `${ms(t.durationUs)} ms`], ['Started', t.started]]
        .map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', { class: 'name' }, v)))),
    t.error ? h('p', { class: 'error' }, t.error) : null,
    h('h2', {}, 'Spans'), spanList(t.spans || [], true)));
}

// ------------------------------------------------------------------ routing
function show(node) {
  $('main').replaceChildren(node);
}

async function render() {
  if (!S.session) return signInView();
  const [page, ...rest] = location.hash.replace(/^#\/?/, '').split('/');
  const arg = decodeURIComponent(rest.join('/'));
  for (const link of document.querySelectorAll('nav a')) {
    const current = link.dataset.page === (page === 'trace' ? 'ops' : page || 'studio');
    if (current) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = `${page || 'studio'} · agentos console`;
  if (page === 'tools' && arg) await toolView(arg);
  else if (page === 'tools') await toolsView({});
  else if (page === 'skills') await skillsView();
  else if (page === 'approvals') await approvalsView();
  else if (page === 'ops') await opsView();
  else if (page === 'trace' && arg) await traceView(arg);
  else studioView();
}

async function start() {
  $('signout').addEventListener('click', async () => {
    await request('DELETE', '/api/session');
    signedOut('Signed out.');
  });
  // After a page change the keyboard starts in the new page: its own field, else the page itself.
  window.addEventListener('hashchange', async () => {
    await render();
    if (!$('main').contains(document.activeElement)) $('main').focus({ preventScroll: true });
  });
  await loadSession();
  await render();
  // The first page is drawn with its data and takes input: tests wait for this, the benchmark
  // (benches/console.py) reads the mark.
  document.body.dataset.ready = 'true';
  performance.mark('agentos-console-ready');
}

start();
