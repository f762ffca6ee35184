// The participant list (the People tab): everyone in the room with their
// role, raised hand, microphone and camera state, the moderator actions the
// local role allows, and a button that copies the room's invite link.

import { h } from './ui.js';
import { t } from './i18n.js';

const $ = (id) => document.getElementById(id);

/** The room's link without any token: what an invitation should carry. */
export function inviteLink(loc = window.location) {
  return `${loc.origin}${loc.pathname}`;
}

/**
 * Renders `people` (`[{id, name, role, self, hand, mic, cam, actions}]`,
 * where `mic`/`cam` are 'on' | 'muted' | 'off' and `actions` is
 * `{mute, remove, lowerHand}` of callbacks or null) into the People pane.
 */
export function renderPeople(people) {
  const list = $('people-list');
  if (!list) return;
  $('tab-people').querySelector('.count').textContent = String(people.length);
  const sorted = [...people].sort((a, b) => {
    // You first, then raised hands in their order, then by name.
    if (a.self !== b.self) return a.self ? -1 : 1;
    if (Boolean(a.hand) !== Boolean(b.hand)) return a.hand ? -1 : 1;
    if (a.hand && b.hand) return a.hand - b.hand;
    return a.name.localeCompare(b.name);
  });
  list.replaceChildren(
    ...sorted.map((p) => {
      const state = (what, s) =>
        h('span', { class: `state ${what} ${s}`, title: `${what === 'mic' ? t('Microphone') : t('Camera')}: ${t(s)}` },
          `${what === 'mic' ? '🎤' : '📷'}${s === 'on' ? '' : '✕'}`);
      const buttons = [];
      const button = (cls, label, title, fn) =>
        h('button', { type: 'button', class: cls, title, 'aria-label': `${title}: ${p.name}`, onclick: fn }, label);
      if (p.actions.lowerHand) buttons.push(button('lower-hand', t('Lower hand'), t('Lower their raised hand'), p.actions.lowerHand));
      if (p.actions.mute) buttons.push(button('mute', t('Mute'), t('Turn off their microphone'), p.actions.mute));
      if (p.actions.remove) buttons.push(button('remove', t('Remove'), t('Remove from the meeting'), p.actions.remove));
      return h(
        'li',
        { class: 'person', 'data-participant': p.id },
        h('span', { class: 'name' }, p.self ? t('{name} (you)', { name: p.name }) : p.name),
        h('span', { class: 'role' }, p.role || ''),
        p.hand ? h('span', { class: 'hand', title: t('Hand raised (#{n} in line)', { n: p.hand }) }, `✋ ${p.hand}`) : '',
        state('mic', p.mic),
        state('cam', p.cam),
        h('span', { class: 'actions' }, ...buttons),
      );
    }),
  );
}

/** Wires the invite button: copies the link, or shows it to copy by hand. */
export function setupInvite() {
  const button = $('people-invite');
  if (!button) return;
  button.addEventListener('click', async () => {
    const link = inviteLink();
    const field = $('people-link');
    field.value = link;
    field.hidden = false;
    try {
      await navigator.clipboard.writeText(link);
      $('people-copied').hidden = false;
      $('people-copied').textContent = t('Link copied');
    } catch {
      // No clipboard permission: the link stays selected in the field.
      field.select();
      $('people-copied').hidden = false;
      $('people-copied').textContent = t('Copy the link above');
    }
  });
}
