/**
 * The copy button of a secret shown once (device MQTT password, webhook secret): revealed only
 * when the script runs; without it the read-only field is there to select. The outcome is
 * announced in the page's status region.
 */
for (const button of document.querySelectorAll<HTMLButtonElement>('button[data-copy]')) {
  const field = document.getElementById(button.dataset.copy ?? '');
  const status = document.querySelector<HTMLElement>('[data-copy-status]');
  if (!(field instanceof HTMLInputElement) || !navigator.clipboard) continue;
  button.hidden = false;
  button.addEventListener('click', () => {
    navigator.clipboard.writeText(field.value).then(
      () => {
        if (status) status.textContent = 'Copied to the clipboard.';
      },
      () => {
        field.select();
        if (status) status.textContent = 'Could not copy: the text is selected, copy it with your keyboard.';
      },
    );
  });
}
