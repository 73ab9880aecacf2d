// The expert console: keeps the queue current and the Space Widget signed in.
(function () {
  'use strict';

  var config = JSON.parse(document.getElementById('console-config').textContent);
  var tokenGeneration = config.tokenGeneration;
  var widget = null;
  var list = document.getElementById('conversations');
  var status = document.getElementById('queue-status');
  var deskFilter = document.getElementById('desk-filter');
  var ratingList = document.getElementById('ratings');
  var latest = [];
  // Rows whose transcript is open: a refresh redraws the queue, so it stops while one is.
  var opened = {};

  // The widget cannot refresh its token: it is removed and started again with a new one.
  function startWidget(accessToken) {
    var element = document.getElementById('widget');
    if (widget) {
      try { widget.remove(); } catch (e) { /* already gone */ }
    }
    if (!window.webex || !window.webex.widget) {
      element.textContent = 'The Webex Space Widget could not be loaded.';
      return;
    }
    widget = window.webex.widget(element);
    widget.spaceWidget({
      accessToken: accessToken,
      destinationId: config.destinationId,
      destinationType: config.destinationType,
      initialActivity: 'message'
    });
  }

  function api(path, options) {
    var init = Object.assign({ credentials: 'same-origin', headers: { 'X-CSRF-Token': config.csrf } }, options || {});
    return fetch(path, init).then(function (response) {
      if (response.status === 401) {
        window.location.href = '/console/login';
        throw new Error('signed out');
      }
      if (!response.ok) { throw new Error(path + ': HTTP ' + response.status); }
      return response.json();
    });
  }

  function text(tag, className, value) {
    var element = document.createElement(tag);
    element.className = className;
    element.textContent = value;
    return element;
  }

  function button(action, label) {
    var element = text('button', action, label);
    element.type = 'button';
    element.dataset.action = action;
    return element;
  }

  function time(iso) {
    return iso ? new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : '';
  }

  // "waiting 12 min": since the customer's first message.
  function waiting(iso) {
    var minutes = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 60000));
    return minutes < 60 ? 'waiting ' + minutes + ' min' : 'waiting ' + Math.floor(minutes / 60) + ' h ' + (minutes % 60) + ' min';
  }

  // The desk filter offers the desks that have conversations, and keeps the choice.
  function updateDesks(conversations) {
    var chosen = deskFilter.value;
    var desks = conversations.map(function (c) { return c.desk; })
      .filter(function (desk, index, all) { return all.indexOf(desk) === index; }).sort();
    if (chosen && desks.indexOf(chosen) < 0) { desks.push(chosen); }
    var options = [new Option('All desks', '')].concat(desks.map(function (desk) { return new Option(desk, desk); }));
    deskFilter.replaceChildren.apply(deskFilter, options);
    deskFilter.value = chosen;
  }

  function render(conversations) {
    latest = conversations;
    opened = {};
    updateDesks(conversations);
    var shown = conversations.filter(function (c) { return !deskFilter.value || c.desk === deskFilter.value; });
    status.textContent = shown.length === 0 ? 'No open conversations.' : shown.length + ' open';
    var items = shown.map(function (c) {
      var item = document.createElement('li');
      item.dataset.conversationId = c.id;
      item.appendChild(text('span', 'channel', c.channel));
      item.appendChild(text('span', 'customer', c.customer));
      item.appendChild(text('span', 'name', c.customerName || ''));
      item.appendChild(text('span', 'desk', c.desk));
      item.appendChild(text('q', 'last-message', c.lastMessage || ''));
      item.appendChild(text('time', 'last-message-at', time(c.lastMessageAt)));
      item.appendChild(text('span', 'waiting', waiting(c.waitingSince)));
      if (c.outOfHours) { item.appendChild(text('span', 'out-of-hours', 'out of hours: waits for the desk to open')); }
      item.appendChild(text('span', 'expiry', c.linkExpiresAt ? 'link until ' + time(c.linkExpiresAt) : 'no link'));
      if (c.bookedFor) {
        var slot = new Date(c.bookedFor).toLocaleString([], { weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });
        item.appendChild(text('span', 'booked', 'booked for ' + slot));
      }
      if (c.linkOpenedAt) { item.appendChild(text('span', 'opened', 'opened ' + time(c.linkOpenedAt))); }
      item.appendChild(text('span', 'assignee', c.assignee ? 'taken by ' + c.assignee : ''));
      var actions = document.createElement('div');
      actions.className = 'actions';
      if (c.hostUrl) {
        var join = text('a', 'join', 'Join as host');
        join.href = c.hostUrl;
        join.target = '_blank';
        join.rel = 'noopener';
        actions.appendChild(join);
      }
      if (!c.assignee) { actions.appendChild(button('take', 'Take')); }
      if (c.takenByMe) { actions.appendChild(button('release', 'Release')); }
      actions.appendChild(button('new-link', 'New link'));
      actions.appendChild(button('close', 'Close'));
      item.appendChild(actions);
      return item;
    });
    list.replaceChildren.apply(list, items);
  }

  deskFilter.addEventListener('change', function () { render(latest); });

  // What customers answered to the survey after their conversations were closed.
  function renderRatings(ratings) {
    if (!ratingList) { return; }
    var items = (ratings || []).map(function (r) {
      var item = document.createElement('li');
      item.dataset.conversationId = r.conversationId;
      item.appendChild(text('span', 'rating', r.rating + '/5'));
      item.appendChild(text('span', 'customer', r.customer));
      item.appendChild(text('span', 'desk', r.desk));
      item.appendChild(text('time', 'answered-at', time(r.answeredAt)));
      return item;
    });
    if (items.length === 0) { items = [text('li', 'none', 'No ratings yet.')]; }
    ratingList.replaceChildren.apply(ratingList, items);
  }

  function refresh() {
    return api('/console/api/queue').then(function (body) {
      if (Object.keys(opened).length === 0) { render(body.conversations); } else { latest = body.conversations; }
      renderRatings(body.ratings);
      if (body.tokenGeneration !== tokenGeneration) {
        tokenGeneration = body.tokenGeneration;
        return api('/console/api/widget').then(function (w) { startWidget(w.accessToken); });
      }
    }).catch(function (error) { status.textContent = 'Could not update the queue: ' + error.message; });
  }

  // Opening a row (anywhere but its buttons and link) shows its transcript under it.
  function toggleTranscript(item) {
    var open = item.querySelector('.transcript');
    if (open) { open.remove(); delete opened[item.dataset.conversationId]; return; }
    opened[item.dataset.conversationId] = true;
    api('/console/api/conversations/' + encodeURIComponent(item.dataset.conversationId)).then(function (body) {
      var transcript = document.createElement('ol');
      transcript.className = 'transcript';
      // The meeting's links with whom they are for (guests added by experts too).
      body.links.forEach(function (link) {
        var entry = document.createElement('li');
        entry.className = 'meeting-link';
        var anchor = document.createElement('a');
        anchor.href = link.url;
        anchor.target = '_blank';
        anchor.rel = 'noopener';
        anchor.textContent = link.role === 'host' ? 'Host link' : 'Guest link';
        entry.appendChild(anchor);
        if (link.sentTo) { entry.appendChild(document.createTextNode(' · sent to ' + link.sentTo)); }
        transcript.appendChild(entry);
      });
      body.transcript.forEach(function (line) {
        var entry = text('li', line.author, line.text);
        entry.title = (line.authorEmail || line.author) + ' · ' + time(line.at);
        transcript.appendChild(entry);
      });
      item.appendChild(transcript);
    }).catch(function (error) { status.textContent = error.message; });
  }

  list.addEventListener('click', function (event) {
    var target = event.target.closest('button[data-action]');
    if (!target) {
      var item = event.target.closest('[data-conversation-id]');
      if (item && !event.target.closest('a')) { toggleTranscript(item); }
      return;
    }
    var id = target.closest('[data-conversation-id]').dataset.conversationId;
    target.disabled = true;
    api('/console/api/conversations/' + encodeURIComponent(id) + '/' + target.dataset.action, { method: 'POST' })
      .catch(function (error) { status.textContent = error.message; })
      .then(function () { opened = {}; return refresh(); });
  });

  startWidget(config.accessToken);
  refresh();
  setInterval(refresh, 3000);
})();
