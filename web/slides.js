// Presenting a library file (docs/browser-client.md, "Presenting a file";
// docs/signaling.md "Presentation"): someone whose role may share the
// screen opens a file of the room's content library — a PDF's pages or an
// image, made into slides by the server — and everyone sees the same slide,
// large beside the tiles. Page turns come from the server (`presentation`
// events), so all pages stay on the same slide; a late joiner gets the
// current one in `collab_state`. The slide is a signed link the server
// makes for each page.

import { h } from './ui.js';
import { t } from './i18n.js';

const $ = (id) => document.getElementById(id);

export class Slides {
  /** `send(msg)` sends over signaling. */
  constructor({ send }) {
    this.send = send;
    /** {library_id, file_id, name, pages, page, url, presenter_id} or null. */
    this.current = null;
    this.mayPresent = false;
    $('ctl-present').addEventListener('click', () => this.send({ type: 'library_files' }));
    $('slide-prev').addEventListener('click', () => this.turn(-1));
    $('slide-next').addEventListener('click', () => this.turn(1));
    $('slide-stop').addEventListener('click', () => this.send({ type: 'present_stop' }));
    $('present-close').addEventListener('click', () => $('present-dialog').close());
  }

  /** The role's permissions (at join and when the role changes). */
  configure(permissions) {
    this.mayPresent = !!(permissions && permissions.screenshare === true);
    $('ctl-present').hidden = !this.mayPresent;
    this.render();
  }

  turn(delta) {
    const c = this.current;
    if (!c) return;
    const page = c.page + delta;
    if (page >= 1 && page <= c.pages) this.send({ type: 'present_page', page });
  }

  /** A `presentation` event, or `collab_state.presentation`. */
  show(presentation) {
    this.current = presentation || null;
    this.render();
  }

  /** The files this participant may open (`library_files`), as a dialog. */
  listFiles(files) {
    const list = $('present-list');
    list.replaceChildren(
      ...(files || []).map((f) =>
        h('li', {},
          h('button', {
            type: 'button',
            class: 'present-file',
            dataset: { fileId: f.file_id },
            onclick: () => {
              this.send({ type: 'present_start', file_id: f.file_id });
              $('present-dialog').close();
            },
          }, `${f.name} (${t('{n} pages', { n: f.pages })})`),
        ),
      ),
    );
    $('present-empty').hidden = (files || []).length > 0;
    const d = $('present-dialog');
    if (!d.open) d.showModal();
  }

  render() {
    const c = this.current;
    const box = $('slides');
    box.hidden = !c;
    document.body.classList.toggle('presenting', !!c);
    const img = $('slide-img');
    if (!c) {
      img.removeAttribute('src');
      return;
    }
    if (img.getAttribute('src') !== c.url) img.src = c.url;
    img.alt = t('Slide {page} of {pages}: {name}', { page: c.page, pages: c.pages, name: c.name });
    $('slide-label').textContent = t('{name} — slide {page} of {pages}', { page: c.page, pages: c.pages, name: c.name });
    for (const id of ['slide-prev', 'slide-next', 'slide-stop']) $(id).hidden = !this.mayPresent;
    $('slide-prev').disabled = c.page <= 1;
    $('slide-next').disabled = c.page >= c.pages;
  }
}
