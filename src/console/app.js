// The expert console: keeps the queue current and the Space Widget signed in.
(function () {
  'use strict';

  var config = JSON.parse(document.getElementById('console-config').textContent);
  var tokenGeneration = config.tokenGeneration;
  var widget = null;
  var list = document.getElementById('conversations');
  var status = document.getElementById('queue-status');

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

  function render(conversations) {
    status.textContent = conversations.length === 0 ? 'No open conversations.' : conversations.length + ' open';
    var items = conversations.map(function (c) {
      var item = document.createElement('li');
      item.dataset.conversationId = c.id;
      item.appendChild(text('span', 'channel', c.channel));
      item.appendChild(text('span', 'customer', c.customer));
      item.appendChild(text('span', 'name', c.customerName || ''));
      item.appendChild(text('q', 'last-message', c.lastMessage || ''));
      item.appendChild(text('time', 'last-message-at', time(c.lastMessageAt)));
      item.appendChild(text('span', 'expiry', c.linkExpiresAt ? 'link until ' + time(c.linkExpiresAt) : 'no link'));
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
      actions.appendChild(button('new-link', 'New link'));
      actions.appendChild(button('close', 'Close'));
      item.appendChild(actions);
      return item;
    });
    list.replaceChildren.apply(list, items);
  }

  function refresh() {
    return api('/console/api/queue').then(function (body) {
      render(body.conversations);
      if (body.tokenGeneration !== tokenGeneration) {
        tokenGeneration = body.tokenGeneration;
        return api('/console/api/widget').then(function (w) { startWidget(w.accessToken); });
      }
    }).catch(function (error) { status.textContent = 'Could not update the queue: ' + error.message; });
  }

  list.addEventListener('click', function (event) {
    var target = event.target.closest('button[data-action]');
    if (!target) { return; }
    var id = target.closest('[data-conversation-id]').dataset.conversationId;
    target.disabled = true;
    api('/console/api/conversations/' + encodeURIComponent(id) + '/' + target.dataset.action, { method: 'POST' })
      .catch(function (error) { status.textContent = error.message; })
      .then(refresh);
  });

  startWidget(config.accessToken);
  refresh();
  setInterval(refresh, 3000);
})();
