// tarstore's web console: uploads, creating, renaming and deleting through
// the HTTP API (/v1/kv). The pages work without this script for browsing
// and downloading. Keys only ever reach the page as text (textContent,
// value), never as markup.
'use strict';

document.documentElement.classList.add('js');

// The header that lets the session cookie stand for the token on writes.
const consoleHeader = {'X-Tarstore-Console': '1'};

function message(text, isError) {
  const m = document.getElementById('message');
  m.textContent = text;
  m.classList.toggle('error', !!isError);
}

// apiError is the message of an API error response.
function apiError(status, body) {
  try {
    return JSON.parse(body).error.message;
  } catch (e) {
    return 'The server answered ' + status;
  }
}

// relPath is the path of a key written as text relative to the page's
// dictionary ("b c/d" → "b%20c/d"), each segment percent-encoded.
function relPath(key) {
  return key.split('/').filter(s => s !== '').map(encodeURIComponent).join('/');
}

async function call(method, path, body) {
  const r = await fetch(path, {method, body, headers: consoleHeader, credentials: 'same-origin'});
  if (!r.ok) {
    throw new Error(apiError(r.status, await r.text()));
  }
  return r;
}

// put uploads one file (or Blob) to path, reporting progress.
function put(path, body, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('PUT', path);
    x.setRequestHeader('X-Tarstore-Console', '1');
    x.upload.onprogress = e => { if (e.lengthComputable) onProgress(e.loaded, e.total); };
    x.onload = () => x.status < 300 ? resolve() : reject(new Error(apiError(x.status, x.responseText)));
    x.onerror = () => reject(new Error('The upload failed: the connection broke'));
    x.send(body);
  });
}

async function upload(files) {
  const dir = document.body.dataset.dir;
  const bar = document.getElementById('progress');
  const total = Array.from(files).reduce((n, f) => n + f.size, 0);
  let done = 0;
  bar.hidden = false;
  bar.value = 0;
  try {
    for (const f of files) {
      message('Uploading ' + f.name + ' …');
      await put(dir + encodeURIComponent(f.name), f, loaded => {
        bar.value = total ? 100 * (done + loaded) / total : 100;
      });
      done += f.size;
    }
    bar.value = 100;
    message('Uploaded ' + files.length + (files.length === 1 ? ' file' : ' files'));
    location.reload();
  } catch (e) {
    message(e.message, true);
  }
}

// ask shows a dialog and resolves to whether it was confirmed: its form
// submitted (OK, or Enter in its input), rather than Cancel or Escape.
// It answers from the events of the click or key itself, not from the
// dialog's close event, which comes a task later and could be taken for
// the answer of the dialog's next showing.
function ask(id, what, below) {
  const d = document.getElementById(id);
  d.querySelector('.what').textContent = what;
  const b = d.querySelector('.below');
  if (b) b.hidden = !below;
  const form = d.querySelector('form');
  const cancel = d.querySelector('button.cancel');
  return new Promise(resolve => {
    const done = ok => {
      form.removeEventListener('submit', confirmed);
      cancel.removeEventListener('click', canceled);
      d.removeEventListener('cancel', canceled);
      resolve(ok);
    };
    const confirmed = () => done(true); // method="dialog": the form closes it
    const canceled = () => {
      done(false);
      d.close();
    };
    form.addEventListener('submit', confirmed);
    cancel.addEventListener('click', canceled);
    d.addEventListener('cancel', canceled); // Escape
    d.showModal();
  });
}

async function rename(row) {
  const key = row.dataset.key;
  const to = document.getElementById('rename-to');
  to.value = key;
  if (!(await ask('rename-dialog', key)) || to.value === key) return;
  try {
    await call('POST', row.dataset.path + '?rename-to=' + encodeURIComponent(to.value));
    location.reload();
  } catch (e) {
    message(e.message, true);
  }
}

async function remove(row) {
  const key = row.dataset.key;
  if (!(await ask('delete-dialog', key, row.classList.contains('dict')))) return;
  try {
    await call('DELETE', row.dataset.path);
    location.reload();
  } catch (e) {
    message(e.message, true);
  }
}

document.addEventListener('DOMContentLoaded', () => {
  for (const b of document.querySelectorAll('button.rename')) {
    b.addEventListener('click', () => rename(b.closest('tr')));
  }
  for (const b of document.querySelectorAll('button.delete')) {
    b.addEventListener('click', () => remove(b.closest('tr')));
  }
  const files = document.getElementById('files');
  if (files) {
    document.getElementById('upload-button').addEventListener('click', () => {
      if (files.files.length) upload(files.files);
    });
    const drop = document.getElementById('drop');
    drop.addEventListener('dragover', e => { e.preventDefault(); drop.classList.add('over'); });
    drop.addEventListener('dragleave', () => drop.classList.remove('over'));
    drop.addEventListener('drop', e => {
      e.preventDefault();
      drop.classList.remove('over');
      if (e.dataTransfer.files.length) upload(e.dataTransfer.files);
    });
  }
  const create = document.getElementById('create-form');
  if (create) {
    create.addEventListener('submit', async e => {
      e.preventDefault();
      const name = document.getElementById('create-name').value;
      const body = document.getElementById('create-content').value;
      try {
        await call('PUT', document.body.dataset.dir + relPath(name), body);
        location.reload();
      } catch (err) {
        message(err.message, true);
      }
    });
  }
});
