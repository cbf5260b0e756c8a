// carebridge secure chat: live updates and upload progress. The page works without
// this script: it only adds to the plain forms.
(function () {
  'use strict';

  var list = document.getElementById('messages');
  if (!list || !window.fetch || !window.JSON) {
    return;
  }
  var lang = document.documentElement.lang || 'en';
  var lastId = parseInt(list.getAttribute('data-last-id'), 10) || 0;
  var loading = false;
  var again = false;
  var active = false;

  function say(key) {
    return list.getAttribute('data-' + key) || '';
  }

  function signedOut() {
    window.location.href = '/chat/signed-out';
  }

  function make(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text) {
      node.textContent = text;
    }
    return node;
  }

  function formatTime(iso) {
    var date = new Date(iso);
    if (isNaN(date.getTime())) {
      return '';
    }
    try {
      return date.toLocaleString(lang, { month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit' });
    } catch (err) {
      return date.toLocaleString();
    }
  }

  function formatSize(size) {
    if (size < 1000) {
      return size + ' B';
    }
    if (size < 1000000) {
      return Math.round(size / 1000) + ' KB';
    }
    return (size / 1000000).toFixed(1) + ' MB';
  }

  // Times come in the clinic's zone; show them in the phone's.
  function localizeTimes(root) {
    var times = root.querySelectorAll('time[datetime]');
    for (var i = 0; i < times.length; i++) {
      var label = formatTime(times[i].getAttribute('datetime'));
      if (label) {
        times[i].textContent = label;
      }
    }
  }

  function render(msg) {
    var item = make('li', 'msg ' + (msg.from_patient ? 'mine' : 'theirs'));
    item.id = 'm' + msg.id;
    var meta = make('p', 'meta');
    meta.appendChild(make('span', 'who', msg.sender));
    meta.appendChild(document.createTextNode(' '));
    var time = make('time', null, formatTime(msg.time));
    time.setAttribute('datetime', msg.time);
    meta.appendChild(time);
    item.appendChild(meta);
    if (msg.preview_url) {
      // The preview; the original opens on tap.
      var imageLink = make('a', 'image-link');
      imageLink.href = msg.file_url;
      var image = make('img');
      if (msg.width && msg.height) {
        image.width = msg.width;
        image.height = msg.height;
      }
      image.loading = 'lazy';
      image.decoding = 'async';
      image.alt = msg.alt || '';
      image.src = msg.preview_url;
      imageLink.appendChild(image);
      item.appendChild(imageLink);
    } else if (msg.file_url) {
      var file = make('p', 'file');
      var fileLink = make('a', null, msg.text);
      fileLink.href = msg.file_url;
      file.appendChild(fileLink);
      file.appendChild(document.createTextNode(' '));
      file.appendChild(make('span', 'size', formatSize(msg.size || 0)));
      item.appendChild(file);
    } else {
      item.appendChild(make('p', 'text', msg.text));
    }
    return item;
  }

  // The clinic's activity: "Seen by the clinic" when the newest message is the patient's
  // and staff have read it; who is typing, until they stop or it lapses.
  var typingTimer = null;
  function showActivity(data) {
    var seenLine = document.getElementById('seen');
    if (seenLine && typeof data.seen === 'number') {
      var last = list.lastElementChild;
      var newest = last ? parseInt((last.id || '').slice(1), 10) || 0 : 0;
      var seen = last && /(^| )mine( |$)/.test(last.className) && newest > 0 && newest <= data.seen;
      var seenText = seen ? seenLine.getAttribute('data-seen') : '';
      if (seenLine.textContent !== seenText) {
        seenLine.textContent = seenText;
      }
    }
    var typingLine = document.getElementById('typing');
    if (typingLine && typeof data.typing === 'string') {
      if (typingLine.textContent !== data.typing) {
        typingLine.textContent = data.typing;
      }
      window.clearTimeout(typingTimer);
      if (data.typing) {
        // Lapses unless said again; ask then.
        typingTimer = window.setTimeout(load, (data.typing_ms || 30000) + 250);
      }
    }
  }

  function showLatest() {
    var latest = document.getElementById('latest');
    if (latest && latest.scrollIntoView) {
      latest.scrollIntoView({ block: 'end' });
    }
  }

  // load fetches the messages after the newest on the page and appends them.
  function load() {
    if (loading) {
      again = true;
      return;
    }
    loading = true;
    var url = '/chat/messages?after=' + lastId + (active ? '&active=1' : '');
    active = false;
    fetch(url, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } })
      .then(function (res) {
        if (res.status === 401) {
          signedOut();
          return null;
        }
        if (!res.ok) {
          throw new Error('HTTP ' + res.status);
        }
        return res.json();
      })
      .then(function (data) {
        if (!data) {
          return;
        }
        var added = false;
        (data.messages || []).forEach(function (msg) {
          if (msg.id <= lastId || document.getElementById('m' + msg.id)) {
            return;
          }
          var empty = document.getElementById('empty');
          if (empty) {
            empty.parentNode.removeChild(empty);
          }
          list.appendChild(render(msg));
          lastId = msg.id;
          added = true;
        });
        list.setAttribute('data-last-id', String(lastId));
        showActivity(data);
        if (added) {
          showLatest();
        }
        if (data.more) {
          again = true;
        }
      })
      .catch(function () { /* the next signal tries again */ })
      .then(function () {
        loading = false;
        if (again) {
          again = false;
          load();
        }
      });
  }

  if (window.EventSource) {
    var events = new EventSource('/chat/events');
    events.addEventListener('update', load);
    events.addEventListener('ended', function () {
      events.close();
      signedOut();
    });
    events.addEventListener('open', function () {
      // Fetch what came while the stream was not open: between drawing the page and
      // the first open (a message, "seen", typing), or while it reconnected.
      load();
    });
  } else {
    window.setInterval(load, 15000);
  }

  // The patient's own activity keeps the session open while they read or type; the
  // live updates alone do not.
  ['keydown', 'input', 'touchstart', 'mousedown'].forEach(function (name) {
    document.addEventListener(name, function () { active = true; }, true);
  });
  window.setInterval(function () {
    if (active) {
      load();
    }
  }, 60000);

  // show puts a word in the upload form's status line (an upload's, or a pending text's).
  function show(text, isError) {
    var status = document.getElementById('upload-status');
    var old = document.getElementById('upload-error');
    if (old) {
      old.parentNode.removeChild(old);
    }
    if (status) {
      status.textContent = text;
      status.className = 'status' + (text ? (isError ? ' error' : ' ok') : '');
    }
  }

  // A text goes by fetch, so the page (and its photos) is not loaded again; without
  // script the form posts as usual.
  var sendForm = document.getElementById('send-form');
  if (sendForm && window.FormData && window.URLSearchParams) {
    var textBox = document.getElementById('text');
    var sendButton = document.getElementById('send');

    var sendProblem = function (text) {
      var old = document.getElementById('send-error');
      if (!text) {
        if (old) {
          old.parentNode.removeChild(old);
        }
        textBox.removeAttribute('aria-describedby');
        return;
      }
      if (!old) {
        old = make('p', 'error');
        old.id = 'send-error';
        old.setAttribute('role', 'alert');
        textBox.parentNode.insertBefore(old, textBox);
      }
      old.textContent = text;
      textBox.setAttribute('aria-describedby', 'send-error');
    };

    sendForm.addEventListener('submit', function (event) {
      event.preventDefault();
      if (!textBox.value.trim()) {
        sendProblem(say('empty'));
        textBox.focus();
        return;
      }
      sendButton.disabled = true;
      fetch(sendForm.action, {
        method: 'POST',
        credentials: 'same-origin',
        cache: 'no-store',
        headers: { Accept: 'application/json', 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(new FormData(sendForm)).toString()
      })
        .then(function (res) {
          if (res.status === 401) {
            signedOut();
            return null;
          }
          return res.json().then(function (body) {
            return { ok: res.ok, body: body };
          }, function () {
            return { ok: false, body: null };
          });
        })
        .then(function (result) {
          if (!result) {
            return;
          }
          if (result.ok) {
            textBox.value = '';
            sendProblem('');
            var sendStatus = document.getElementById('send-status');
            if (sendStatus) {
              sendStatus.textContent = (result.body && result.body.pending) ? say('pending') : '';
            }
            active = true;
            load();
          } else {
            sendProblem((result.body && result.body.error) || say('send-failed'));
          }
        })
        .catch(function () {
          sendProblem(say('send-failed'));
        })
        .then(function () {
          sendButton.disabled = false;
        });
    });
  }

  // Uploads go by XMLHttpRequest to show progress; without it the form posts as usual.
  var form = document.getElementById('upload-form');
  if (form && window.FormData && window.XMLHttpRequest) {
    var progress = document.getElementById('upload-progress');
    var button = document.getElementById('upload');
    var maxBytes = parseInt(form.getAttribute('data-max-bytes'), 10) || 0;


    var chosen = function () {
      var inputs = form.querySelectorAll('input[type="file"]');
      for (var i = 0; i < inputs.length; i++) {
        if (inputs[i].files && inputs[i].files.length > 0) {
          return inputs[i].files[0];
        }
      }
      return null;
    };

    // One file at a time: choosing one clears the other input, and its name is shown.
    var chosenLine = document.getElementById('file-chosen');
    var inputs = form.querySelectorAll('input[type="file"]');
    var showChosen = function () {
      var file = chosen();
      if (chosenLine) {
        chosenLine.textContent = file ? (chosenLine.getAttribute('data-chosen') || '%s').replace('%s', file.name) : '';
      }
    };
    Array.prototype.forEach.call(inputs, function (input) {
      input.addEventListener('change', function () {
        Array.prototype.forEach.call(inputs, function (other) {
          if (other !== input && input.files && input.files.length > 0) {
            other.value = '';
          }
        });
        show('', false);
        showChosen();
      });
    });

    form.addEventListener('submit', function (event) {
      var file = chosen();
      event.preventDefault();
      if (!file) {
        show(say('none'), true);
        return;
      }
      if (maxBytes && file.size > maxBytes) {
        show(say('too-large'), true);
        return;
      }
      var xhr = new XMLHttpRequest();
      xhr.open('POST', form.action);
      xhr.setRequestHeader('Accept', 'application/json');
      xhr.upload.addEventListener('progress', function (ev) {
        if (ev.lengthComputable) {
          progress.value = ev.loaded / ev.total;
        }
      });
      var done = function () {
        progress.hidden = true;
        button.disabled = false;
      };
      xhr.addEventListener('load', function () {
        done();
        var body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch (err) {
          body = null;
        }
        if (xhr.status === 401) {
          signedOut();
        } else if (xhr.status >= 200 && xhr.status < 300) {
          form.reset();
          showChosen();
          show(say('sent'), false);
          active = true;
          load();
        } else {
          show((body && body.error) || say('failed'), true);
        }
      });
      xhr.addEventListener('error', function () {
        done();
        show(say('failed'), true);
      });
      progress.value = 0;
      progress.hidden = false;
      button.disabled = true;
      show(say('sending'), false);
      xhr.send(new FormData(form));
    });
  }

  localizeTimes(document);
  showLatest();
}());
