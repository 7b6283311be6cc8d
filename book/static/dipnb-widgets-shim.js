/* ipywidgets 8 typesets widget labels through the MathJax 2 API (MathJax.Hub.Queue) whenever a
 * global MathJax exists. The book serves MathJax 3, which has no Hub, so without this shim every
 * labelled widget would throw while rendering. The shim gives MathJax 3 a Hub whose Queue
 * forwards "Typeset" jobs to MathJax 3's typesetPromise. It must load before the widget manager
 * (embed.js), whose window "load" handler renders the widgets: ours runs first. */
(function () {
  "use strict";

  function typeset(element) {
    var mj = window.MathJax;
    var ready = (mj.startup && mj.startup.promise) || Promise.resolve();
    ready
      .then(function () {
        return mj.typesetPromise ? mj.typesetPromise([element]) : null;
      })
      .catch(function (err) {
        console.warn("dipnb: MathJax could not typeset a widget label", err);
      });
  }

  function patch() {
    var mj = window.MathJax;
    // Only the loaded MathJax 3 object has `version`; before that, window.MathJax is its config.
    if (!mj || !mj.version || mj.Hub) {
      return;
    }
    mj.Hub = {
      Queue: function () {
        for (var i = 0; i < arguments.length; i++) {
          var job = arguments[i];
          if (Array.isArray(job) && job[0] === "Typeset" && job[2]) {
            typeset(job[2]);
          }
        }
      },
    };
  }

  patch();
  document.addEventListener("DOMContentLoaded", patch);
  window.addEventListener("load", patch);
})();
