() => {
  // The page script of the web chat (run once when the page loads). Messages are sanitised HTML without
  // scripts, so their links name what they do: "#cite-<turn>-<n>" opens a source in the pane, "#copy-<turn>"
  // copies that answer as plain text, "#fb-up-<turn>" / "#fb-down-<turn>" rate it. A click on one of them is
  // handed to the server through a hidden textbox and button; nothing from a message is ever evaluated.
  const send = (value) => {
    const box = document.querySelector("#ui-action textarea, #ui-action input");
    const go = document.querySelector("#ui-action-go");
    if (!box || !go) return;
    box.value = `${value}:${Date.now()}`;
    box.dispatchEvent(new Event("input", { bubbles: true }));
    setTimeout(() => go.click(), 30);
  };

  const copyText = async (text) => {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch (e) {
      const area = document.createElement("textarea");
      area.value = text;
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      const ok = document.execCommand("copy");
      area.remove();
      return ok;
    }
  };

  document.addEventListener("click", (ev) => {
    const link = ev.target.closest && ev.target.closest('#chat a[href^="#"]');
    if (!link) return;
    const href = link.getAttribute("href");
    let m = href.match(/^#cite-(\d+)-(\d+)$/);
    if (m) {
      ev.preventDefault();
      send(`cite:${m[1]}:${m[2]}`);
      return;
    }
    m = href.match(/^#copy-(\d+)$/);
    if (m) {
      ev.preventDefault();
      const plain = link.closest(".answer")?.querySelector(".plain-text");
      if (plain) {
        copyText(plain.textContent).then((ok) => {
          link.textContent = ok ? "Copied" : "Copy failed";
          setTimeout(() => { link.textContent = "Copy"; }, 1500);
        });
      }
      return;
    }
    m = href.match(/^#fb-(up|down)-(\d+)$/);
    if (m) {
      ev.preventDefault();
      send(`fb:${m[2]}:${m[1]}`);
    }
  }, true);

  const whenPresent = (find, act, tries = 40) => {
    const el = find();
    if (el) act(el);
    else if (tries > 0) setTimeout(() => whenPresent(find, act, tries - 1), 50);
  };

  window.assistantUI = {
    // The quoted sentence of the source pane in the middle of the pane (and the pane in view on a phone).
    showQuote() {
      whenPresent(() => document.getElementById("pane-active"), (mark) => {
        const pane = document.getElementById("source-pane");
        if (pane && window.innerWidth < 900) pane.scrollIntoView({ block: "start" });
        mark.scrollIntoView({ block: "center" });
      });
    },
    // The last question at the top of the conversation, so its answer is read from its first line.
    showLastAnswer() {
      whenPresent(() => {
        const rows = document.querySelectorAll("#chat .q-text");
        return rows.length ? rows[rows.length - 1] : null;
      }, (q) => {
        const log = document.querySelector("#chat .bubble-wrap");
        const bubble = q.closest(".message-row, .message-wrap > div") || q;
        if (log) log.scrollTop += bubble.getBoundingClientRect().top - log.getBoundingClientRect().top - 8;
        if (window.innerWidth < 900) document.getElementById("chat")?.scrollIntoView({ block: "start" });
      });
    },
  };
  // On a phone the conversation list starts folded away (it would cover the chat), and the top of the page
  // stays in view; on a wide screen the cursor waits in the question box.
  if (window.innerWidth < 900) {
    whenPresent(() => document.querySelector("#sidebar.open .toggle-button"), (b) => b.click());
  } else {
    whenPresent(() => document.querySelector("#question textarea"), (box) => box.focus({ preventScroll: true }));
  }
}
