// The playground page: the /imagine form built from the command definition (GET /api/command), one card per job
// that follows the job's Server-Sent Events, the buttons of a result, and the history. Plain JavaScript, no build.
// Every text from the server goes in with textContent, never as HTML.

const $ = (selector, root = document) => root.querySelector(selector);
const results = $('#results');
const cards = new Map();
let nextPage = null;

/** POSTs or GETs JSON; a refusal comes back as an Error whose message is the server's sentence. */
async function api(path, options = {}) {
  const init = { method: options.method ?? 'GET', headers: {} };
  if (options.body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    location.assign('/login');
    throw new Error('Log in first.');
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error?.message ?? `The server answered ${response.status}.`);
  return data;
}

function show(element, text) {
  element.textContent = text ?? '';
  element.hidden = !text;
}

// ——— the form, from the command definition ———

async function buildForm() {
  const command = await api('/api/command');
  const options = $('#options');
  for (const option of command.options) {
    if (option.name === 'prompt') {
      $('#prompt').maxLength = option.maxLength ?? 1000;
      $('#prompt').title = option.description;
      continue;
    }
    const wrapper = document.createElement('div');
    const label = document.createElement('label');
    label.htmlFor = `option-${option.name}`;
    label.textContent = option.name;
    let input;
    if (option.choices) {
      input = document.createElement('select');
      for (const choice of option.choices) {
        const item = document.createElement('option');
        item.value = String(choice.value);
        item.textContent = choice.name;
        item.selected = choice.value === option.default;
        input.append(item);
      }
    } else {
      input = document.createElement('input');
      input.type = option.kind === 'integer' ? 'number' : 'text';
      if (option.min !== undefined) input.min = String(option.min);
      if (option.max !== undefined) input.max = String(option.max);
      if (option.kind === 'integer') input.step = '1';
      if (option.default !== null) input.value = String(option.default);
      else input.placeholder = option.name === 'seed' ? 'random' : '';
    }
    input.id = `option-${option.name}`;
    input.name = option.name;
    input.title = option.description;
    input.dataset.kind = option.kind;
    wrapper.append(label, input);
    options.append(wrapper);
  }
}

/** The form's values: integers as numbers when they are whole numbers, else as typed (the server names the field). */
function formValues() {
  const values = { prompt: $('#prompt').value };
  for (const input of $('#options').querySelectorAll('input, select')) {
    const text = input.value.trim();
    if (text === '') continue;
    values[input.name] = input.dataset.kind === 'integer' && /^\d+$/.test(text) ? Number(text) : text;
  }
  return values;
}

async function submit(event) {
  event.preventDefault();
  const button = $('#go');
  button.disabled = true;
  show($('#refusal'), '');
  try {
    const { job, position } = await api('/api/imagine', { method: 'POST', body: formValues() });
    addCard(job, { first: true, position });
  } catch (error) {
    show($('#refusal'), error.message);
  } finally {
    button.disabled = false;
  }
}

// ——— one card per job ———

function addCard(job, { first = false, position = 0 } = {}) {
  if (cards.has(job.id)) return cards.get(job.id);
  const element = $('#card').content.firstElementChild.cloneNode(true);
  element.dataset.job = job.id;
  const card = { job, element, source: null };
  cards.set(job.id, card);
  $('.prompt', element).textContent = job.prompt;
  $('.label', element).textContent = job.label;
  $('.cancel', element).addEventListener('click', () => cancel(card));
  if (first) results.prepend(element);
  else results.append(element);
  $('#empty').hidden = true;
  render(card, job);
  if (job.status === 'queued' && position > 0) showStatus(card, { message: `Queued — position ${position}` }, 'queued');
  if (!['done', 'failed', 'cancelled'].includes(job.status)) follow(card);
  return card;
}

function render(card, job) {
  card.job = job;
  const { element } = card;
  if (job.status === 'done' && job.result) showResult(card, job);
  else if (job.status === 'done') showStatus(card, { message: 'This image is no longer kept on the server.' }, 'gone');
  else if (job.status === 'failed') showStatus(card, { message: job.error?.message ?? 'Generation failed.' }, 'failed');
  else if (job.status === 'cancelled') showStatus(card, { message: 'Cancelled.' }, 'cancelled');
  else if (job.status === 'running' || job.status === 'delivering') showStatus(card, { message: 'Generating…' }, 'running');
  else showStatus(card, { message: 'Queued' }, 'queued');
  $('.details', element).textContent = job.result ? job.result.details : job.seedText;
}

function showStatus(card, data, type) {
  const { element } = card;
  show($('.status', element), data.message);
  const progress = $('.progress', element);
  const stage = data.progress;
  progress.hidden = type !== 'running';
  if (stage && stage.stage === 'unet') progress.value = stage.step / Math.max(1, stage.steps);
  else if (stage && stage.stage === 'vae') progress.value = 0.97;
  else if (type === 'running') progress.removeAttribute('value');
  $('.cancel', element).hidden = type !== 'queued' && type !== 'waiting';
  element.dataset.state = type;
}

function showResult(card, job) {
  const { element } = card;
  const result = job.result;
  show($('.status', element), '');
  $('.progress', element).hidden = true;
  $('.cancel', element).hidden = true;
  const link = $('.grid-link', element);
  link.href = result.grid;
  link.hidden = false;
  const image = $('.grid', element);
  image.src = result.grid;
  image.alt = job.prompt;
  $('.details', element).textContent = result.details;
  $('.note', element).textContent = result.note ?? '';

  const buttons = $('.buttons', element);
  buttons.replaceChildren();
  const button = (text, title, action) => {
    const node = document.createElement('button');
    node.type = 'button';
    node.textContent = text;
    node.title = title;
    node.addEventListener('click', () => act(card, node, action));
    buttons.append(node);
    return node;
  };
  // the buttons Discord shows, in its order: U1…Un and Re-roll, then V1…Vn
  result.images.forEach((_, i) => button(`U${i + 1}`, `Image ${i + 1} alone at full size`, { path: 'upscale', index: i }));
  button('Re-roll', 'The same prompt with a new seed', { path: 'reroll' }).classList.add('reroll');
  const rowBreak = document.createElement('div');
  rowBreak.className = 'break';
  buttons.append(rowBreak);
  result.images.forEach((_, i) => button(`V${i + 1}`, `Variations of image ${i + 1}`, { path: 'vary', index: i }));
  buttons.hidden = false;

  const downloads = $('.downloads', element);
  downloads.replaceChildren();
  result.images.forEach((url, i) => {
    const anchor = document.createElement('a');
    anchor.href = url;
    anchor.download = '';
    anchor.textContent = result.images.length > 1 ? `PNG ${i + 1} (seed ${result.seeds[i]})` : `PNG (seed ${result.seeds[i]})`;
    downloads.append(anchor);
  });
  downloads.hidden = false;
  element.dataset.state = 'done';
}

/** Follows the job's events; the browser reconnects by itself with Last-Event-ID, and the stream ends with the job. */
function follow(card) {
  if (card.source) return;
  const source = new EventSource(`/api/jobs/${card.job.id}/events`);
  card.source = source;
  const stop = () => {
    source.close();
    card.source = null;
  };
  for (const type of ['queued', 'waiting', 'running']) {
    source.addEventListener(type, (event) => showStatus(card, JSON.parse(event.data), type));
  }
  source.addEventListener('done', (event) => {
    stop();
    const { job } = JSON.parse(event.data);
    render(card, job);
  });
  for (const type of ['failed', 'refused', 'cancelled']) {
    source.addEventListener(type, (event) => {
      stop();
      showStatus(card, JSON.parse(event.data), type);
    });
  }
}

async function act(card, button, action) {
  button.disabled = true;
  show($('.refusal', card.element), '');
  try {
    const body = action.index === undefined ? undefined : { index: action.index };
    const { job, position } = await api(`/api/jobs/${card.job.id}/${action.path}`, { method: 'POST', body });
    addCard(job, { first: true, position });
    window.scrollTo({ top: results.offsetTop - 12, behavior: 'smooth' });
  } catch (error) {
    show($('.refusal', card.element), error.message);
  } finally {
    button.disabled = false;
  }
}

async function cancel(card) {
  show($('.refusal', card.element), '');
  try {
    const { job } = await api(`/api/jobs/${card.job.id}/cancel`, { method: 'POST' });
    card.source?.close();
    card.source = null;
    render(card, job);
  } catch (error) {
    show($('.refusal', card.element), error.message);
  }
}

// ——— the history ———

async function loadHistory() {
  const query = nextPage === null ? '' : `?before=${nextPage}`;
  const { jobs, next } = await api(`/api/history${query}`);
  for (const job of jobs) addCard(job);
  nextPage = next;
  $('#more').hidden = next === null;
  $('#empty').hidden = cards.size > 0;
}

async function main() {
  $('#imagine').addEventListener('submit', submit);
  $('#prompt').addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) $('#imagine').requestSubmit();
  });
  $('#more').addEventListener('click', () => loadHistory().catch((error) => show($('#refusal'), error.message)));
  try {
    await buildForm();
    await loadHistory();
    const session = await fetch('/api/session').then((response) => response.json()).catch(() => ({}));
    $('#logout').hidden = !session.login;
  } catch (error) {
    show($('#refusal'), error.message);
  }
}

void main();
