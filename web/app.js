// Kairos web UI: plain JavaScript, no build step, no external files. Pages are routed by the
// URL hash: #/ (search), #/browse, #/upload, #/asset/ID?t=MS. Every call goes to /api/v1.
'use strict';

const $ = (sel, el = document) => el.querySelector(sel);
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
const tc = (ms) => {
  const s = Math.floor(ms / 1000);
  const p = (n) => String(n).padStart(2, '0');
  return `${p(Math.floor(s / 3600))}:${p(Math.floor(s / 60) % 60)}:${p(s % 60)}`;
};
const fileName = (path) => String(path || '').split(/[\\/]/).pop();
const main = $('#main');
const app = { health: null, example: null, poll: null };

// ---- API key and requests -------------------------------------------------------------------
const key = () => localStorage.getItem('kairos.key') || '';
// Media elements cannot send headers: on a private archive their URLs carry the key.
const withKey = (url) => (url && key() && app.health && app.health.private
  ? `${url}${url.includes('?') ? '&' : '?'}api_key=${encodeURIComponent(key())}` : url);

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (key()) headers.Authorization = `Bearer ${key()}`;
  const res = await fetch(path, Object.assign({}, options, { headers }));
  const type = res.headers.get('content-type') || '';
  const data = type.includes('json') ? await res.json() : await res.text();
  if (!res.ok) {
    const err = new Error((data && data.error && data.error.message) || `${res.status} ${res.statusText}`);
    err.code = data && data.error && data.error.code;
    err.status = res.status;
    if (res.status === 401) openKeyDialog();
    throw err;
  }
  return data;
}
const postJson = (path, body, method = 'POST') => api(path, {
  method, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
});

// Scrolls `box` (not the page) just enough that `el` is inside it.
function reveal(el, box) {
  if (!box) return;
  const r = el.getBoundingClientRect();
  const c = box.getBoundingClientRect();
  if (r.top < c.top) box.scrollTop += r.top - c.top;
  else if (r.bottom > c.bottom) box.scrollTop += r.bottom - c.bottom;
  if (r.left < c.left) box.scrollLeft += r.left - c.left;
  else if (r.right > c.right) box.scrollLeft += r.right - c.right;
}

function openKeyDialog() {
  const dialog = $('#key-dialog');
  if (dialog.open) return;
  $('#key-input').value = key();
  dialog.showModal();
}
$('#key-button').addEventListener('click', openKeyDialog);
$('#key-dialog').addEventListener('close', () => {
  const choice = $('#key-dialog').returnValue;
  if (choice === 'save') localStorage.setItem('kairos.key', $('#key-input').value.trim());
  if (choice === 'clear') localStorage.removeItem('kairos.key');
  updateKeyButton();
  if (choice) route();
});
const updateKeyButton = () => { $('#key-button').textContent = key() ? 'API key ✓' : 'API key'; };

// ---- Player dialog --------------------------------------------------------------------------
const player = $('#player');
const video = $('#video');
function play(assetId, startMs, name) {
  video.src = withKey(`/api/v1/assets/${encodeURIComponent(assetId)}/media`);
  video.addEventListener('loadedmetadata', () => {
    video.currentTime = startMs / 1000;
    video.play().catch(() => {});
  }, { once: true });
  $('#playing').textContent = `${name} at ${tc(startMs)}`;
  $('#open-asset').href = `#/asset/${encodeURIComponent(assetId)}?t=${startMs}`;
  player.showModal();
}
$('#close').addEventListener('click', () => player.close());
$('#open-asset').addEventListener('click', () => player.close());
player.addEventListener('close', () => { video.pause(); video.removeAttribute('src'); video.load(); });

// ---- Routing --------------------------------------------------------------------------------
function parseHash() {
  const [path, query] = location.hash.replace(/^#/, '').split('?');
  return { path: path || '/', params: new URLSearchParams(query || '') };
}
function go(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== '' && v != null) q.set(k, v);
  const next = `#${path}${q.toString() ? `?${q}` : ''}`;
  if (location.hash === next) route(); else location.hash = next;
}
async function route() {
  clearInterval(app.poll);
  const { path, params } = parseHash();
  const page = path.startsWith('/asset/') ? 'asset' : (path.slice(1) || 'search');
  for (const a of document.querySelectorAll('.top nav a')) {
    if (a.dataset.page === page) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  try {
    if (page === 'asset') await assetPage(decodeURIComponent(path.slice('/asset/'.length)), params);
    else if (page === 'browse') await browsePage(params);
    else if (page === 'upload') await uploadPage();
    else await searchPage(params);
  } catch (e) {
    main.innerHTML = `<div class="empty"><p class="error">${esc(e.message)}</p></div>`;
  }
}
window.addEventListener('hashchange', route);
document.addEventListener('keydown', (ev) => {
  const typing = /INPUT|TEXTAREA|SELECT/.test(document.activeElement.tagName);
  if (ev.key === '/' && !typing) { const q = $('#q'); if (q) { ev.preventDefault(); q.focus(); } }
});

// ---- Filters and facets (search and browse) ------------------------------------------------
const FILTERS = ['kind', 'collection', 'language', 'from', 'to'];
function filterPanel(params, facets) {
  const facetList = (name, label) => {
    const counts = (facets && facets[name]) || {};
    const entries = Object.entries(counts).sort((a, b) => b[1] - a[1]).slice(0, 12);
    if (!entries.length) return '';
    const current = name === 'year' ? (params.get('from') || '').slice(0, 4) : params.get(name);
    return `<fieldset><legend>${label}</legend>${entries.map(([v, n]) => `<button type="button" class="facet" data-facet="${name}" data-value="${esc(v)}" aria-pressed="${current === v}"><span>${esc(v)}</span><span class="n">${n}</span></button>`).join('')}</fieldset>`;
  };
  return `<aside class="filters" aria-label="Filters">
    <fieldset><legend>Filters</legend>
      <label>Kind <select name="kind"><option value="">any</option>${['image', 'video', 'audio'].map((k) => `<option ${params.get('kind') === k ? 'selected' : ''}>${k}</option>`).join('')}</select></label>
      <label>Collection <input name="collection" value="${esc(params.get('collection'))}"></label>
      <label>Language <input name="language" maxlength="2" placeholder="en, fr…" value="${esc(params.get('language'))}"></label>
      <label>Captured from <input type="date" name="from" value="${esc(params.get('from'))}"></label>
      <label>Captured to <input type="date" name="to" value="${esc(params.get('to'))}"></label>
    </fieldset>
    ${facetList('kind', 'Kind')}${facetList('collection', 'Collection')}${facetList('language', 'Language')}${facetList('year', 'Year')}
  </aside>`;
}
function wireFilters(container, params, apply) {
  for (const el of container.querySelectorAll('.filters select, .filters input')) {
    el.addEventListener('change', () => { params.set(el.name, el.value); params.delete('offset'); apply(params); });
  }
  for (const b of container.querySelectorAll('.facet')) {
    b.addEventListener('click', () => {
      const { facet, value } = b.dataset;
      const on = b.getAttribute('aria-pressed') === 'true';
      if (facet === 'year') {
        params.set('from', on ? '' : `${value}-01-01`);
        params.set('to', on ? '' : `${value}-12-31`);
      } else params.set(facet, on ? '' : value);
      params.delete('offset');
      apply(params);
    });
  }
}
const paramsObject = (params) => Object.fromEntries([...params.entries()].filter(([, v]) => v !== ''));
function pager(total, offset, limit, move) {
  if (total <= limit) return '';
  const el = document.createElement('div');
  el.className = 'pager';
  el.innerHTML = `<button type="button" class="quiet" ${offset === 0 ? 'disabled' : ''}>← Previous</button><span>${offset + 1}–${Math.min(offset + limit, total)} of ${total}</span><button type="button" class="quiet" ${offset + limit >= total ? 'disabled' : ''}>Next →</button>`;
  const [prev, , next] = el.children;
  prev.addEventListener('click', () => move(Math.max(0, offset - limit)));
  next.addEventListener('click', () => move(offset + limit));
  return el;
}

// ---- Search page ----------------------------------------------------------------------------
const whyBadges = (why) => (why || []).map((w) => `<span class="why ${esc(w)}" title="matched by ${esc(w.replace('_', ' '))}">${esc(w.replace('_', ' '))}</span>`).join('');
function momentButton(assetId, name, m) {
  return `<button type="button" class="moment" data-asset="${esc(assetId)}" data-start="${m.start_ms}" data-name="${esc(name)}"><span class="tc">▶ ${tc(m.start_ms)}</span>${m.snippet || ''}${whyBadges(m.why)}</button>`;
}
function hitCard(h) {
  const name = h.title || fileName(h.path);
  const m = h.moments[0];
  const link = `#/asset/${encodeURIComponent(h.asset_id)}${m && h.kind !== 'image' ? `?t=${m.start_ms}` : ''}`;
  const head = h.kind === 'audio' && !(m && m.thumbnail)
    ? '<div class="recording" aria-hidden="true">♪</div>'
    : `<img class="thumb" loading="lazy" alt="" src="${esc(withKey(m && m.thumbnail ? m.thumbnail : `/api/v1/assets/${encodeURIComponent(h.asset_id)}/thumbnail`))}">`;
  const moments = h.kind === 'image'
    ? (m ? `<p>${m.snippet || ''}${whyBadges(m.why)}</p>` : '')
    : h.moments.map((x) => momentButton(h.asset_id, name, x)).join('');
  return `<article class="hit"><a href="${link}" tabindex="-1">${head}</a><div class="body">
    <h3><a href="${link}">${esc(name)}</a> <small>${esc(h.kind)}</small></h3>${moments}
    <p class="row"><a href="#/?similar=${encodeURIComponent(h.asset_id)}">find similar</a></p></div></article>`;
}
function momentCard(mh) {
  const name = mh.title || fileName(mh.path);
  const link = `#/asset/${encodeURIComponent(mh.asset_id)}?t=${mh.start_ms}`;
  const head = mh.thumbnail ? `<img class="thumb" loading="lazy" alt="" src="${esc(withKey(mh.thumbnail))}">` : '<div class="recording" aria-hidden="true">♪</div>';
  const body = mh.asset_kind === 'image' ? `<p>${mh.snippet || ''}${whyBadges(mh.why)}</p>` : momentButton(mh.asset_id, name, mh);
  return `<article class="hit"><a href="${link}" tabindex="-1">${head}</a><div class="body"><h3><a href="${link}">${esc(name)}</a></h3>${body}</div></article>`;
}

async function searchPage(params) {
  const hasQuery = params.get('q') || params.get('similar') || app.example;
  main.innerHTML = `
    <form class="searchbar" id="search-form" role="search">
      <div class="drop" id="drop">
        <input type="search" id="q" name="q" value="${esc(params.get('q'))}" placeholder="Describe the moment, or words said or written — or drop / paste an image" aria-label="Search words" autofocus>
      </div>
      <span class="example" id="example"></span>
      <label class="quiet"><span class="sr">Example image</span> <input type="file" id="image" accept="image/*" aria-label="Example image"></label>
      <select id="group" aria-label="Show"><option value="assets">assets</option><option value="moments" ${params.get('group') === 'moments' ? 'selected' : ''}>moments</option></select>
      <button type="submit">Search</button>
    </form>
    <div class="layout"><div id="filters-slot"></div><section aria-label="Results"><p class="summary" id="summary" aria-live="polite"></p><div class="grid" id="results"></div><div id="pager"></div></section></div>`;
  const form = $('#search-form');
  const showExample = () => {
    $('#example').innerHTML = app.example
      ? `<img alt="example image" src="${URL.createObjectURL(app.example)}"> <button type="button" class="quiet" id="drop-example">remove</button>` : '';
    const rm = $('#drop-example');
    if (rm) rm.addEventListener('click', () => { app.example = null; showExample(); });
  };
  const setExample = (file) => { if (file && file.type.startsWith('image/')) { app.example = file; showExample(); form.requestSubmit(); } };
  showExample();
  $('#image').addEventListener('change', (ev) => setExample(ev.target.files[0]));
  const drop = $('#drop');
  drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev) => { ev.preventDefault(); drop.classList.remove('over'); setExample(ev.dataTransfer.files[0]); });
  $('#q').addEventListener('paste', (ev) => {
    const item = [...(ev.clipboardData || {}).items || []].find((i) => i.type.startsWith('image/'));
    if (item) { ev.preventDefault(); setExample(item.getAsFile()); }
  });
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    params.set('q', $('#q').value.trim());
    params.set('group', $('#group').value === 'moments' ? 'moments' : '');
    params.delete('offset');
    if (app.example) params.delete('similar');
    go('/', paramsObject(params));
  });
  const apply = (p) => go('/', paramsObject(p));
  if (!hasQuery) {
    $('#filters-slot').innerHTML = '';
    const counts = app.health ? app.health.assets : null;
    $('#results').outerHTML = counts && counts.ready === 0
      ? `<div class="empty"><h2>The archive is empty</h2><p><a href="#/upload">Upload files</a>, or ingest a folder: <code>kairos ingest /path/to/archive</code>.</p></div>`
      : `<div class="empty"><h2>Find the moment</h2><p>Describe what is seen (“boxer lands an uppercut”), name words said or written, or drop an example image. Press <kbd>/</kbd> to search from anywhere.</p>${counts ? `<p>${counts.ready} assets, ${counts.segments} moments searchable.</p>` : ''}</div>`;
    return;
  }
  const body = { query: params.get('q') || undefined, group: params.get('group') || undefined, limit: 24, offset: Number(params.get('offset') || 0) };
  for (const f of FILTERS) if (params.get(f)) body[f] = params.get(f);
  if (params.get('similar')) body.similar_to = params.get('similar');
  $('#summary').textContent = 'Searching…';
  let data;
  if (app.example) {
    const fd = new FormData();
    fd.append('image', app.example);
    for (const [k, v] of Object.entries(body)) if (v !== undefined) fd.append(k, v);
    data = await api('/api/v1/search/image', { method: 'POST', body: fd });
  } else {
    data = await postJson('/api/v1/search', body);
  }
  $('#filters-slot').innerHTML = filterPanel(params, data.facets);
  wireFilters(main, params, apply);
  if (data.notices && data.notices.length) $('#notices').innerHTML = data.notices.map((n) => `<p>${esc(n)}</p>`).join('');
  const unit = data.group === 'moments' ? 'moment' : 'asset';
  const similar = params.get('similar') ? ' similar to the one you chose' : '';
  $('#summary').textContent = data.total ? `${data.total} ${unit}${data.total === 1 ? '' : 's'}${similar}` : `Nothing matched${similar}. Try other words, fewer filters, or mode “visual”.`;
  $('#results').innerHTML = data.group === 'moments' ? data.moments.map(momentCard).join('') : data.hits.map(hitCard).join('');
  const p = pager(data.total, body.offset, body.limit, (o) => { params.set('offset', o); apply(params); });
  if (p) $('#pager').append(p);
}
main.addEventListener('click', (ev) => {
  const b = ev.target.closest('.moment');
  if (b && b.dataset.asset) play(b.dataset.asset, Number(b.dataset.start), b.dataset.name);
});

// ---- Browse page ----------------------------------------------------------------------------
async function browsePage(params) {
  const q = new URLSearchParams(paramsObject(params));
  q.set('limit', '48');
  const data = await api(`/api/v1/assets?${q}`);
  const offset = Number(params.get('offset') || 0);
  main.innerHTML = `<div class="layout">${filterPanel(params, data.facets)}<section aria-label="Assets">
    <p class="summary">${data.total} asset${data.total === 1 ? '' : 's'}, newest first</p>
    <div class="grid">${data.assets.map((a) => `<article class="hit"><a href="#/asset/${encodeURIComponent(a.id)}" tabindex="-1">${a.kind === 'audio' ? '<div class="recording" aria-hidden="true">♪</div>' : `<img class="thumb" loading="lazy" alt="" src="${esc(withKey(`/api/v1/assets/${encodeURIComponent(a.id)}/thumbnail`))}">`}</a>
      <div class="body"><h3><a href="#/asset/${encodeURIComponent(a.id)}">${esc(a.title || fileName(a.path))}</a> <small>${esc(a.kind)}</small></h3>
      <p>${esc(a.collection || '')}${a.duration_ms ? ` · ${tc(a.duration_ms)}` : ''}${a.captured_at ? ` · ${esc(a.captured_at.slice(0, 10))}` : ''}</p></div></article>`).join('')}</div><div id="pager"></div></section></div>`;
  wireFilters(main, params, (p) => go('/browse', paramsObject(p)));
  const p = pager(data.total, offset, 48, (o) => { params.set('offset', o); go('/browse', paramsObject(params)); });
  if (p) $('#pager').append(p);
}

// ---- Asset page -----------------------------------------------------------------------------
async function assetPage(id, params) {
  const enc = encodeURIComponent(id);
  const [detail, timeline] = await Promise.all([api(`/api/v1/assets/${enc}`), api(`/api/v1/assets/${enc}/moments`)]);
  const a = detail.asset;
  let cues = [];
  if (a.kind !== 'image') {
    try { cues = (await api(`/api/v1/assets/${enc}/transcript`)).segments; } catch (e) { cues = []; }
  }
  const name = a.title || fileName(a.path);
  const media = withKey(detail.links.media);
  const stage = a.kind === 'video' ? `<video id="asset-media" controls preload="metadata" src="${esc(media)}"></video>`
    : a.kind === 'audio' ? `<audio id="asset-media" controls preload="metadata" src="${esc(media)}"></audio>`
      : `<img alt="${esc(a.caption || name)}" src="${esc(/^image\/(jpeg|png|webp|gif)$/.test(a.mime || '') ? media : withKey(detail.links.thumbnail))}">`;
  const shots = timeline.moments.filter((m) => m.kind === 'shot' || m.kind === 'keyframe');
  const meta = [['File', a.path], ['Kind', a.kind], ['Status', a.status + (a.error ? ` — ${a.error}` : '')], ['Collection', a.collection], ['Language', a.language],
    ['Captured', a.captured_at], ['Duration', a.duration_ms != null ? tc(a.duration_ms) : null], ['Size', a.width ? `${a.width}×${a.height}` : null],
    ['Credit', a.credit], ['Camera', a.camera], ['Container', a.media && a.media.container], ['Ingested', a.ingested_at]]
    .filter(([, v]) => v).map(([k, v]) => `<dt>${k}</dt><dd>${esc(v)}</dd>`).join('');
  main.innerHTML = `<div class="asset"><div>
      <h1>${esc(name)}</h1>
      <div class="stage">${stage}</div>
      ${shots.length ? `<h2>Shots</h2><div class="strip" id="strip">${shots.map((m) => `<div><button type="button" class="shot" data-start="${m.start_ms}" data-end="${m.end_ms}">${m.thumbnail ? `<img loading="lazy" alt="" src="${esc(withKey(m.thumbnail))}">` : ''}<span>${tc(m.start_ms)} ${esc(m.kind)}</span></button><a href="#/?similar=${encodeURIComponent(m.segment_id)}">similar</a></div>`).join('')}</div>` : ''}
      <p class="row">${a.kind !== 'image' ? `<a href="/api/v1/assets/${enc}/transcript?format=vtt">transcript (VTT)</a> · <a href="/api/v1/assets/${enc}/transcript?format=srt">SRT</a> · ` : ''}<a href="${esc(media)}" download>original file</a> · <a href="#/?similar=${enc}">find similar</a></p>
    </div><div>
      ${cues.length ? `<section class="panel"><h2>Transcript</h2><div class="transcript" id="transcript">${cues.map((c) => `<button type="button" class="cue" data-start="${c.start_ms}" data-end="${c.end_ms}"><span class="tc">${tc(c.start_ms)}</span>${esc(c.text)}</button>`).join('')}</div></section>` : ''}
      <section class="panel"><h2>About</h2><dl class="meta">${meta}</dl></section>
      <section class="panel"><h2>Edit</h2><form class="edit" id="edit">
        <label>Title <input name="title" value="${esc(a.title)}"></label>
        <label>Caption <textarea name="caption" rows="3">${esc(a.caption)}</textarea></label>
        <label>Keywords (comma-separated) <input name="keywords" value="${esc((a.keywords || []).join(', '))}"></label>
        <label>Collection <input name="collection" value="${esc(a.collection)}"></label>
        <div class="row"><button>Save</button><button type="button" class="danger" id="delete">Delete</button><span id="edit-status" role="status"></span></div>
      </form></section>
    </div></div>`;
  const el = $('#asset-media');
  if (el) {
    const seek = (ms) => { el.currentTime = ms / 1000; el.play().catch(() => {}); };
    const t = Number(params.get('t') || 0);
    if (t) el.addEventListener('loadedmetadata', () => { el.currentTime = t / 1000; }, { once: true });
    for (const b of main.querySelectorAll('.cue, .shot')) b.addEventListener('click', () => seek(Number(b.dataset.start)));
    // The transcript and the shot strip follow playback (inside their own boxes: the page
    // itself does not move under the reader).
    el.addEventListener('timeupdate', () => {
      const now = el.currentTime * 1000;
      for (const b of main.querySelectorAll('.cue, .shot')) {
        const on = now >= Number(b.dataset.start) && now < Math.max(Number(b.dataset.end), Number(b.dataset.start) + 1);
        if (on !== b.classList.contains('current')) {
          b.classList.toggle('current', on);
          if (on) reveal(b, b.closest('.transcript, .strip'));
        }
      }
    });
  }
  $('#edit').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    const status = $('#edit-status');
    try {
      await postJson(`/api/v1/assets/${enc}`, {
        title: f.title.value, caption: f.caption.value, collection: f.collection.value,
        keywords: f.keywords.value.split(',').map((k) => k.trim()).filter(Boolean),
      }, 'PATCH');
      status.textContent = 'Saved.';
    } catch (e) { status.innerHTML = `<span class="error">${esc(e.message)}</span>`; }
  });
  $('#delete').addEventListener('click', async () => {
    if (!confirm(`Delete ${name} from the archive? Its moments leave every index.`)) return;
    try { await api(`/api/v1/assets/${enc}`, { method: 'DELETE' }); go('/browse'); } catch (e) { $('#edit-status').innerHTML = `<span class="error">${esc(e.message)}</span>`; }
  });
}

// ---- Upload page ----------------------------------------------------------------------------
async function uploadPage() {
  main.innerHTML = `<section class="panel"><h2>Upload to the archive</h2>
    ${key() ? '' : '<p class="error">Uploads need an API key: set one with the “API key” button (an operator creates it with <code>kairos keys create --name NAME</code>).</p>'}
    <form id="upload" class="edit">
      <div class="drop" id="upload-drop"><label>Files (images, videos, recordings) <input type="file" name="files" multiple required></label></div>
      <label>Collection <input name="collection"></label>
      <label>Caption language <input name="language" maxlength="2" placeholder="en, fr…"></label>
      <div class="row"><button>Upload and index</button><progress id="upload-progress" max="1" value="0" hidden></progress><span id="upload-status" role="status"></span></div>
    </form></section>
    <section class="panel"><h2>Jobs</h2><div id="jobs">Loading…</div></section>`;
  const form = $('#upload');
  const drop = $('#upload-drop');
  drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev) => { ev.preventDefault(); drop.classList.remove('over'); form.files.files = ev.dataTransfer.files; });
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const fd = new FormData();
    for (const f of form.files.files) fd.append('file', f, f.name);
    if (form.collection.value.trim()) fd.append('collection', form.collection.value.trim());
    if (form.language.value.trim()) fd.append('language', form.language.value.trim());
    // XMLHttpRequest, not fetch: it reports upload progress.
    const xhr = new XMLHttpRequest();
    const bar = $('#upload-progress');
    bar.hidden = false;
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = e.loaded / e.total; };
    xhr.onload = () => {
      bar.hidden = true;
      let data = {};
      try { data = JSON.parse(xhr.responseText); } catch (e) { data = {}; }
      if (xhr.status === 202) { $('#upload-status').textContent = `Job ${data.job.id} queued.`; form.reset(); refreshJobs(); }
      else { $('#upload-status').innerHTML = `<span class="error">${esc((data.error && data.error.message) || xhr.statusText)}</span>`; if (xhr.status === 401) openKeyDialog(); }
    };
    xhr.onerror = () => { bar.hidden = true; $('#upload-status').innerHTML = '<span class="error">The upload was interrupted.</span>'; };
    xhr.open('POST', '/api/v1/uploads');
    if (key()) xhr.setRequestHeader('Authorization', `Bearer ${key()}`);
    xhr.send(fd);
    $('#upload-status').textContent = 'Uploading…';
  });
  // Cancel: a queued job never starts; a running one stops after the files in progress.
  $('#jobs').addEventListener('click', async (ev) => {
    const b = ev.target.closest('.cancel-job');
    if (!b) return;
    b.disabled = true;
    try {
      await api(`/api/v1/jobs/${encodeURIComponent(b.dataset.job)}/cancel`, { method: 'POST' });
      b.textContent = 'Stopping…';
    } catch (e) {
      $('#upload-status').textContent = `Cannot cancel: ${e.message}`;
    }
  });
  await refreshJobs();
  app.poll = setInterval(refreshJobs, 1000);
}
async function refreshJobs() {
  const slot = $('#jobs');
  if (!slot) return;
  const jobs = await api('/api/v1/jobs?limit=20');
  if (!jobs.length) { slot.textContent = 'No jobs yet.'; return; }
  const rows = await Promise.all(jobs.map(async (j) => {
    const running = j.status === 'running' || j.status === 'queued';
    const s = running || j.failed ? await api(`/api/v1/jobs/${encodeURIComponent(j.id)}`) : { job: j, failures: [] };
    const seen = j.done + j.failed + j.skipped;
    const p = s.progress;
    const live = p && (p.file || p.stage) ? ` — ${esc(p.stage || '')} ${esc(p.file || '')}${p.total_ms ? ` (${Math.round(100 * p.done_ms / p.total_ms)}%)` : ''}` : '';
    const failures = s.failures.length ? `<details><summary>${s.failures.length} failed</summary><ul>${s.failures.map((f) => `<li>${esc(fileName(f.path))}: ${esc(f.error)}</li>`).join('')}</ul></details>` : '';
    return `<tr data-job="${esc(j.id)}" data-status="${esc(j.status)}"><td>${esc(j.created_at.slice(0, 19).replace('T', ' '))}</td><td>${esc(j.kind)}: ${esc(j.source)}</td>
      <td><span class="job-status">${esc(j.status)}</span>${running && j.kind !== 'ingest' ? ` <button type="button" class="cancel-job" data-job="${esc(j.id)}">Cancel</button>` : ''}${live}${j.error ? `<div class="error">${esc(j.error)}</div>` : ''}${failures}</td>
      <td><progress max="${Math.max(j.total, 1)}" value="${seen}"></progress> ${seen}/${j.total} (${j.done} indexed, ${j.skipped} skipped, ${j.failed} failed)</td></tr>`;
  }));
  slot.innerHTML = `<table class="jobs"><thead><tr><th>Started</th><th>Source</th><th>Status</th><th>Progress</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

// ---- Start ----------------------------------------------------------------------------------
(async () => {
  updateKeyButton();
  try {
    app.health = await (await fetch('/api/v1/health')).json();
    $('#notices').innerHTML = (app.health.notices || []).map((n) => `<p>${esc(n)}</p>`).join('');
    if (app.health.private && !key()) openKeyDialog();
  } catch (e) {
    $('#notices').innerHTML = '<p>The Kairos server does not answer.</p>';
  }
  // Old links (/?q=words&kind=audio) still run their search.
  const old = new URLSearchParams(location.search);
  if (old.get('q') && !location.hash) go('/', { q: old.get('q'), kind: old.get('kind') || '' });
  else route();
})();
