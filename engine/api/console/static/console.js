// csops console: optional niceties; every page works without JavaScript.
document.addEventListener("submit", function (ev) {
  var button = ev.submitter || ev.target.querySelector("[data-confirm]");
  if (button && button.dataset && button.dataset.confirm && !window.confirm(button.dataset.confirm)) {
    ev.preventDefault();
  }
});
