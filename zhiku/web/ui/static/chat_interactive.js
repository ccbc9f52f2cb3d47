// A workflow's question to the user inside an answer (FastGPT's interactive value item; FASTGPT-FORMATS.md
// §2.6): a userSelect's options as buttons, or a formInput's form (`params.inputForm`: text, textarea, number
// with min/max, select with its list; required marks, maxLength, default values). An interaction a nested run
// asked (a tool branch's toolChildrenInteractive, and the other wrappers zhiku.apps.chat_values lists) is
// shown as the one it wraps, `params.childrenResponse`.
//
// The reply is handed to chat.js (`onReply`), which sends it as the chat's next message, as an API client
// would: an option's text, or the form's values as a JSON object string by field key. Once answered the
// question is locked and shows the reply, as the stored item records it (`userSelectedVal`; each field's
// `value` and `submitted`). Everything the workflow wrote is set with textContent only.

// Interactions that wrap the one of a nested run (as zhiku.apps.chat_values.CHILD_INTERACTIONS).
const CHILD_INTERACTIONS = new Set(["toolChildrenInteractive", "loopInteractive", "childrenInteractive"]);

function node(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

function text(value) {
  return value === undefined || value === null ? "" : String(value);
}

/** The interaction that asks: a nested run's own, unwrapped. */
export function innermost(interactive) {
  let current = interactive;
  while (CHILD_INTERACTIONS.has(current?.type) && current.params?.childrenResponse) {
    current = current.params.childrenResponse;
  }
  return current || {};
}

/** Whether the stored interaction records its reply. */
export function isAnswered(interactive) {
  const asked = innermost(interactive);
  if (asked.type === "userSelect") return asked.params?.userSelectedVal !== undefined && asked.params?.userSelectedVal !== null;
  if (asked.type === "userInput") return Boolean(asked.params?.submitted);
  return false;
}

/** The question as a block for the answer's body: { element, lock(reply), unlock() }. `onReply(reply)`
 *  answers true when the reply went out (the block then locks). An answered interaction comes locked. */
export function interactionView(interactive, { t, onReply }) {
  const asked = innermost(interactive);
  const params = asked.params || {};
  const block = node("div", "interaction");
  block.setAttribute("role", "group");
  block.setAttribute("aria-label", t("chat.interaction"));
  if (params.description) block.append(node("p", "interaction-description", text(params.description)));
  const view = asked.type === "userInput" ? formView(block, params, t, onReply) : selectView(block, params, t, onReply);
  if (isAnswered(interactive)) view.lock(asked.type === "userSelect" ? text(params.userSelectedVal) : null);
  return { element: block, ...view };
}

function selectView(block, params, t, onReply) {
  const options = (params.userSelectOptions || []).filter((option) => option && typeof option === "object");
  const group = node("div", "interaction-options");
  const replied = node("p", "interaction-reply muted");
  replied.hidden = true;
  const buttons = options.map((option) => {
    const button = node("button", "btn interaction-option", text(option.value));
    button.type = "button";
    button.dataset.key = text(option.key);
    button.setAttribute("aria-pressed", "false");
    button.addEventListener("click", () => onReply(text(option.value)));
    return button;
  });
  group.append(...buttons);
  block.classList.add("interaction-select");
  block.append(group, replied);
  return {
    lock(reply) {
      block.classList.add("answered");
      const wanted = text(reply).trim();
      let chosen = null;
      buttons.forEach((button, i) => {
        button.disabled = true;
        const option = options[i];
        const match = Boolean(wanted) && !chosen && (text(option.value).trim() === wanted || text(option.key) === wanted);
        if (match) chosen = button;
        button.setAttribute("aria-pressed", String(match));
        button.classList.toggle("chosen", match);
      });
      replied.hidden = Boolean(chosen) || !wanted;
      replied.textContent = wanted && !chosen ? t("chat.interaction_replied", { reply: wanted }) : "";
    },
    unlock() {
      block.classList.remove("answered");
      replied.hidden = true;
      for (const button of buttons) {
        button.disabled = false;
        button.setAttribute("aria-pressed", "false");
        button.classList.remove("chosen");
      }
    },
  };
}

/** One form field's control: its type's input, with the field's limits, holding `value`. */
function control(field, value) {
  const name = text(field.key);
  let input;
  if (field.type === "textarea") {
    input = node("textarea");
    input.rows = 3;
  } else if (field.type === "select") {
    input = node("select");
    const empty = node("option", "", "");
    empty.value = "";
    input.append(empty);
    for (const item of Array.isArray(field.list) ? field.list : []) {
      const option = node("option", "", text(item?.label ?? item?.value));
      option.value = text(item?.value ?? item?.label);
      input.append(option);
    }
  } else {
    input = node("input");
    if (field.type === "numberInput") {
      input.type = "number";
      input.step = "any";
      if (typeof field.min === "number") input.min = String(field.min);
      if (typeof field.max === "number") input.max = String(field.max);
    } else {
      input.type = "text";
    }
  }
  if (field.type !== "select" && field.type !== "numberInput" && Number(field.maxLength) > 0) {
    input.maxLength = Number(field.maxLength);
  }
  input.name = name;
  input.dataset.field = name;
  input.dataset.kind = field.type === "numberInput" ? "number" : "text";
  input.required = Boolean(field.required);
  input.value = text(value);
  return input;
}

function formView(block, params, t, onReply) {
  const fields = (params.inputForm || params.userInputForms || []).filter((f) => f && typeof f === "object" && f.key);
  const answered = Boolean(params.submitted);
  const form = node("form", "form interaction-form");
  const inputs = fields.map((field) => {
    const label = node("label", "interaction-field");
    const heading = node("span", "interaction-label", text(field.label || field.key));
    if (field.required) {
      const mark = node("span", "required", " *");
      mark.setAttribute("aria-hidden", "true");
      heading.append(mark);
    }
    label.append(heading);
    const input = control(field, answered ? field.value : field.defaultValue);
    label.append(input);
    if (field.description) label.append(node("small", "hint", text(field.description)));
    form.append(label);
    return input;
  });
  const submit = node("button", "btn btn-primary interaction-submit", t("chat.interaction_submit"));
  submit.type = "submit";
  const submitted = node("p", "interaction-submitted muted", t("chat.interaction_submitted"));
  submitted.hidden = true;
  form.append(submit, submitted);
  form.addEventListener("submit", (event) => {
    event.preventDefault(); // the browser checked the fields' own limits (required, min/max, maxLength) first
    const values = {};
    for (const input of inputs) {
      if (input.value === "") continue; // left empty: the field's default applies
      values[input.dataset.field] = input.dataset.kind === "number" ? Number(input.value) : input.value;
    }
    onReply(JSON.stringify(values));
  });
  block.classList.add("interaction-input");
  block.append(form);
  return {
    lock(reply) {
      block.classList.add("answered");
      let values = null;
      try {
        values = reply ? JSON.parse(reply) : null;
      } catch {
        values = null;
      }
      for (const input of inputs) {
        if (values && typeof values === "object" && input.dataset.field in values) {
          input.value = text(values[input.dataset.field]);
        }
        input.disabled = true;
      }
      submit.hidden = true;
      submitted.hidden = !(answered || values);
    },
    unlock() {
      block.classList.remove("answered");
      for (const input of inputs) input.disabled = false;
      submit.hidden = false;
      submitted.hidden = true;
    },
  };
}
