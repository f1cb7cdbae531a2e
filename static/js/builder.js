/* The rule builder: edits a segment's rule tree (the JSON of DESIGN.md's "rule language") as
   nested groups and conditions, shows the live count from POST /api/v1/segments/preview, and
   keeps the tree in the hidden "definition" field that the form posts.

   The tree is read into a small model (one object per node, with a uid for the DOM) and written
   back by serialise() in a fixed key order, so what is saved, reopened and saved again is the
   same JSON text. A node the model cannot hold exactly (an unknown key, say) is kept as JSON
   text in a "raw" node: nothing the builder opens is ever changed by opening it.
   Plain JavaScript, no build step; every word shown comes translated from the page
   (builder-config's i18n). */
(function () {
  "use strict";

  var mount = document.getElementById("rule-builder");
  var hidden = document.getElementById("builder-definition");
  var configElement = document.getElementById("builder-config");
  if (!mount || !hidden || !configElement) {
    return;
  }
  var config = JSON.parse(configElement.textContent);
  var T = config.i18n;
  var FIELDS = {};
  config.fields.forEach(function (spec) { FIELDS[spec.key] = spec; });
  var NO_VALUE_OPS = set(config.no_value_ops);
  var LIST_OPS = set(config.list_ops);
  var DAY_OPS = set(config.day_ops);
  var NUMBER_ONLY_OPS = set(["gt", "gte", "lt", "lte", "between"]);
  var TEXT_ONLY_OPS = set(["contains", "starts_with"]);
  var ATTRIBUTE_PREFIX = "attr.";
  var PREVIEW_DELAY = 400; // ms after the last change: one query per pause, not per keystroke
  var TYPEAHEAD_DELAY = 200;
  var DEFAULT_OPS = { number: "gte", text: "eq", date: "within_last_days", bool: "is_true", choice: "in", attribute: "eq" };

  var nextUid = 1;
  var state = { root: null, errors: [] };
  var pendingFocus = null;

  function set(items) {
    var result = {};
    (items || []).forEach(function (item) { result[item] = true; });
    return result;
  }

  function format(template, values) {
    return template.replace(/%\((\w+)\)s/g, function (match, key) {
      return Object.prototype.hasOwnProperty.call(values, key) ? String(values[key]) : match;
    });
  }

  function isObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  function isWhole(value) {
    return typeof value === "number" && Number.isInteger(value);
  }

  /* Deep equality of JSON values; object keys in any order. */
  function sameJson(a, b) {
    if (a === b) {
      return true;
    }
    if (Array.isArray(a) || Array.isArray(b)) {
      if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) {
        return false;
      }
      return a.every(function (item, i) { return sameJson(item, b[i]); });
    }
    if (isObject(a) && isObject(b)) {
      var keys = Object.keys(a);
      if (keys.length !== Object.keys(b).length) {
        return false;
      }
      return keys.every(function (key) {
        return Object.prototype.hasOwnProperty.call(b, key) && sameJson(a[key], b[key]);
      });
    }
    return false;
  }

  function onlyKeys(object, allowed) {
    return Object.keys(object).every(function (key) { return allowed.indexOf(key) !== -1; });
  }

  // --- the model: JSON -> nodes -------------------------------------------------------------

  function parseNode(json) {
    var node = null;
    try {
      node = tryParse(json);
    } catch (error) {
      node = null;
    }
    if (node && sameJson(serialise(node), json)) {
      return node;
    }
    return rawNode(json);
  }

  function rawNode(json) {
    return { kind: "raw", uid: nextUid++, text: JSON.stringify(json, null, 2) };
  }

  function parseWindow(json) {
    if ("within_days" in json) {
      return { unit: "days", amount: json.within_days };
    }
    if ("within_hours" in json) {
      return { unit: "hours", amount: json.within_hours };
    }
    return null;
  }

  function parseWhere(where) {
    if (where === undefined) {
      return [];
    }
    if (!isObject(where)) {
      throw new Error("where");
    }
    return Object.keys(where).map(function (key) {
      var condition = where[key];
      if (isObject(condition)) {
        if (!onlyKeys(condition, ["op", "value"])) {
          throw new Error("where condition");
        }
        return {
          uid: nextUid++, key: key, op: condition.op, isObject: true,
          hasValue: "value" in condition, value: condition.value
        };
      }
      return { uid: nextUid++, key: key, op: "eq", isObject: false, hasValue: true, value: condition };
    });
  }

  function parseFollowUp(json) {
    if (json === undefined) {
      return null;
    }
    if (!isObject(json) || !onlyKeys(json, ["event", "within_days", "within_hours", "where"])) {
      throw new Error("follow-up");
    }
    return { event: json.event, window: parseWindow(json), where: parseWhere(json.where) };
  }

  function tryParse(json) {
    if (!isObject(json)) {
      return null;
    }
    var keys = Object.keys(json);
    if (keys.length === 1 && (keys[0] === "all" || keys[0] === "any") && Array.isArray(json[keys[0]])) {
      return { kind: "group", uid: nextUid++, op: keys[0], children: json[keys[0]].map(parseNode) };
    }
    if (keys.length === 1 && keys[0] === "not") {
      return { kind: "not", uid: nextUid++, child: parseNode(json.not) };
    }
    if ("field" in json && onlyKeys(json, ["field", "op", "value"]) && typeof json.field === "string") {
      return {
        kind: "field", uid: nextUid++, field: json.field, op: json.op,
        hasValue: "value" in json, value: json.value
      };
    }
    if ("tag" in json && onlyKeys(json, ["tag", "op"])) {
      return { kind: "tag", uid: nextUid++, tag: json.tag, op: json.op };
    }
    if ("event" in json && onlyKeys(json, ["event", "within_days", "within_hours", "where", "count", "followed_by", "not_followed_by"])) {
      var count = null;
      if ("count" in json) {
        if (!isObject(json.count) || !onlyKeys(json.count, ["op", "value"])) {
          return null;
        }
        count = { op: json.count.op, hasValue: "value" in json.count, value: json.count.value };
      }
      return {
        kind: "event", uid: nextUid++, event: json.event, window: parseWindow(json),
        where: parseWhere(json.where), count: count,
        followed_by: parseFollowUp(json.followed_by),
        not_followed_by: parseFollowUp(json.not_followed_by)
      };
    }
    if (keys.length === 1 && keys[0] === "segment") {
      return { kind: "segment", uid: nextUid++, segment: json.segment };
    }
    return null;
  }

  // --- the model: nodes -> JSON, in a fixed key order ----------------------------------------

  function serialiseWhere(rows) {
    // Property keys sorted: the stored JSON (PostgreSQL's jsonb) keeps no order of its own.
    var sorted = rows.slice().sort(function (a, b) { return a.key < b.key ? -1 : a.key > b.key ? 1 : 0; });
    var where = {};
    sorted.forEach(function (row) {
      if (!row.isObject && row.op === "eq") {
        where[row.key] = row.value;
      } else {
        var condition = { op: row.op };
        if (row.hasValue) {
          condition.value = row.value;
        }
        where[row.key] = condition;
      }
    });
    return where;
  }

  function writeWindow(json, window) {
    if (window) {
      json["within_" + window.unit] = window.amount;
    }
  }

  function serialiseFollowUp(followUp) {
    var json = { event: followUp.event };
    writeWindow(json, followUp.window);
    if (followUp.where.length) {
      json.where = serialiseWhere(followUp.where);
    }
    return json;
  }

  function serialise(node) {
    var json;
    switch (node.kind) {
      case "group":
        json = {};
        json[node.op] = node.children.map(serialise);
        return json;
      case "not":
        return { not: serialise(node.child) };
      case "field":
        json = { field: node.field };
        if (node.op !== undefined) {
          json.op = node.op;
        }
        if (node.hasValue) {
          json.value = node.value;
        }
        return json;
      case "tag":
        json = { tag: node.tag };
        if (node.op !== undefined) {
          json.op = node.op;
        }
        return json;
      case "event":
        json = { event: node.event };
        writeWindow(json, node.window);
        if (node.where.length) {
          json.where = serialiseWhere(node.where);
        }
        if (node.count) {
          json.count = { op: node.count.op };
          if (node.count.hasValue) {
            json.count.value = node.count.value;
          }
        }
        if (node.followed_by) {
          json.followed_by = serialiseFollowUp(node.followed_by);
        }
        if (node.not_followed_by) {
          json.not_followed_by = serialiseFollowUp(node.not_followed_by);
        }
        return json;
      case "segment":
        return { segment: node.segment };
      default:
        try {
          return JSON.parse(node.text);
        } catch (error) {
          return node.text; // the preview names the problem at this node's path
        }
    }
  }

  // --- new nodes ------------------------------------------------------------------------------

  function newNode(kind) {
    switch (kind) {
      case "group":
        return { kind: "group", uid: nextUid++, op: "all", children: [] };
      case "tag":
        return { kind: "tag", uid: nextUid++, tag: "", op: undefined };
      case "event":
        return {
          kind: "event", uid: nextUid++, event: "", window: { unit: "days", amount: 7 }, where: [],
          count: null, followed_by: null, not_followed_by: null
        };
      case "segment":
        return { kind: "segment", uid: nextUid++, segment: null };
      default:
        return { kind: "field", uid: nextUid++, field: "", op: undefined, hasValue: false, value: undefined };
    }
  }

  // --- fields, ops and values -----------------------------------------------------------------

  function specOf(key) {
    if (typeof key !== "string") {
      return null;
    }
    if (key.indexOf(ATTRIBUTE_PREFIX) === 0) {
      return {
        key: key, label: key.slice(ATTRIBUTE_PREFIX.length), type: "attribute",
        ops: config.attribute.ops, help_text: config.attribute.help
      };
    }
    return FIELDS[key] || null;
  }

  function opKeys(spec) {
    return spec.ops.map(function (item) { return item.op; });
  }

  /* How an op's value is entered: none, one, a [from, to] pair or a list. */
  function valueShape(op) {
    if (NO_VALUE_OPS[op]) {
      return "none";
    }
    if (op === "between") {
      return "pair";
    }
    if (LIST_OPS[op]) {
      return "list";
    }
    return "one";
  }

  function emptyValue(spec, op) {
    var shape = valueShape(op);
    if (shape === "pair") {
      return [null, null];
    }
    if (shape === "list") {
      return [];
    }
    if (spec && (spec.type === "text" || (spec.type === "attribute" && !NUMBER_ONLY_OPS[op]))) {
      return "";
    }
    return null;
  }

  /* The value carried over when the op changes, where it still means the same thing. */
  function carryValue(spec, oldOp, newOp, value) {
    var oldShape = valueShape(oldOp);
    var newShape = valueShape(newOp);
    var sameKind = spec.type !== "date" || Boolean(DAY_OPS[oldOp]) === Boolean(DAY_OPS[newOp]);
    if (oldOp === undefined || !sameKind || oldShape === "none" || newShape === "none") {
      return emptyValue(spec, newOp);
    }
    if (oldShape === newShape) {
      return value;
    }
    var first = Array.isArray(value) ? value[0] : value;
    if (newShape === "pair") {
      return [first === undefined ? null : first, null];
    }
    if (newShape === "list") {
      return first === null || first === undefined || first === "" ? [] : [first];
    }
    return first === undefined ? emptyValue(spec, newOp) : first;
  }

  function setOp(node, spec, op) {
    var value = carryValue(spec, node.op, op, node.value);
    node.op = op;
    node.hasValue = valueShape(op) !== "none";
    node.value = node.hasValue ? value : undefined;
  }

  function setField(node, key) {
    var oldSpec = specOf(node.field);
    var spec = specOf(key);
    node.field = key;
    if (!spec) {
      return;
    }
    if (oldSpec && oldSpec.type === spec.type && node.op !== undefined && opKeys(spec).indexOf(node.op) !== -1) {
      if (spec.type === "choice" && oldSpec.key !== spec.key) {
        node.value = emptyValue(spec, node.op); // another field's codes mean nothing here
      }
      return;
    }
    var op = DEFAULT_OPS[spec.type];
    if (opKeys(spec).indexOf(op) === -1) {
      op = spec.ops[0].op;
    }
    node.op = undefined;
    setOp(node, spec, op);
  }

  /* A typed value from an input's text: numbers as numbers, text as text, yes/no as true/false. */
  function typedValue(text, type) {
    if (type === "number") {
      if (text.trim() === "") {
        return null;
      }
      var number = Number(text);
      return Number.isFinite(number) ? number : text;
    }
    if (type === "bool") {
      return text === "true";
    }
    return text;
  }

  function typeOf(value) {
    if (typeof value === "number") {
      return "number";
    }
    if (typeof value === "boolean") {
      return "bool";
    }
    return "text";
  }

  function shown(value) {
    return value === null || value === undefined ? "" : String(value);
  }

  // --- the DOM --------------------------------------------------------------------------------

  function h(tag, attributes) {
    var element = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) {
      var value = attributes[name];
      if (value === null || value === undefined || value === false) {
        return;
      }
      if (name === "text") {
        element.textContent = value;
      } else if (name.indexOf("on") === 0) {
        element.addEventListener(name.slice(2), value);
      } else if (value === true) {
        element.setAttribute(name, "");
      } else {
        element.setAttribute(name, value);
      }
    });
    append(element, Array.prototype.slice.call(arguments, 2));
    return element;
  }

  /* Children may come in nested lists (an editor returns its label and input); gaps are skipped. */
  function append(element, child) {
    if (child === null || child === undefined || child === false) {
      return;
    }
    if (Array.isArray(child)) {
      child.forEach(function (item) { append(element, item); });
    } else {
      element.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
  }

  function label(forId, text, hiddenLabel) {
    return h("label", { "for": forId, "class": hiddenLabel ? "visually-hidden" : null, text: text });
  }

  function select(id, options, current, onChange, extra) {
    var element = h("select", Object.assign({ id: id, onchange: function () { onChange(element.value); } }, extra || {}));
    options.forEach(function (option) {
      if (option.group) {
        var group = h("optgroup", { label: option.group });
        option.options.forEach(function (inner) {
          group.appendChild(h("option", { value: inner.value, selected: inner.value === current, text: inner.label }));
        });
        element.appendChild(group);
      } else {
        element.appendChild(h("option", { value: option.value, selected: option.value === current, text: option.label }));
      }
    });
    return element;
  }

  function button(text, onClick, extra) {
    return h("button", Object.assign({ type: "button", onclick: onClick, text: text }, extra || {}));
  }

  function textInput(id, value, onInput, extra) {
    var input = h("input", Object.assign({ type: "text", id: id, value: shown(value) }, extra || {}));
    input.addEventListener("input", function () { onInput(input.value); });
    return input;
  }

  function numberInput(id, value, onInput, extra) {
    var input = h("input", Object.assign({ type: "number", id: id, value: shown(value), step: "any", "class": "input-number" }, extra || {}));
    input.addEventListener("input", function () { onInput(typedValue(input.value, "number")); });
    return input;
  }

  // --- known values (cities, tags, event names, property keys) -------------------------------

  var knownValues = {};

  function fetchValues(kind, params) {
    var query = new URLSearchParams(Object.assign({ kind: kind }, params || {}));
    var key = query.toString();
    if (!knownValues[key]) {
      knownValues[key] = fetch(config.urls.values + "?" + key, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : { values: [] }; })
        .then(function (data) { return data.values || []; })
        .catch(function () { delete knownValues[key]; return []; });
    }
    return knownValues[key];
  }

  function fillDatalist(datalist, values) {
    datalist.textContent = "";
    values.forEach(function (value) { datalist.appendChild(h("option", { value: value })); });
  }

  /* A text input whose datalist offers known values; typeahead asks again as the text changes. */
  function suggestInput(id, value, kind, onInput, options) {
    options = options || {};
    var listId = id + "-options";
    var datalist = h("datalist", { id: listId });
    var input = textInput(id, value, function (text) {
      onInput(text);
      if (options.typeahead) {
        clearTimeout(input.typeaheadTimer);
        input.typeaheadTimer = setTimeout(function () {
          fetchValues(kind, { q: text }).then(function (values) { fillDatalist(datalist, values); });
        }, TYPEAHEAD_DELAY);
      }
    }, Object.assign({ list: listId, autocomplete: "off" }, options.attributes || {}));
    input.addEventListener("focus", function () {
      fetchValues(kind, options.params ? options.params() : (options.typeahead ? { q: input.value } : {}))
        .then(function (values) { fillDatalist(datalist, values); });
    }, { once: !options.typeahead && !options.params });
    return [input, datalist];
  }

  /* Checkboxes for a list of values (codes with labels), filterable; keeps the list's order. */
  function multiPick(id, legendText, choices, values, onChange) {
    var list = Array.isArray(values) ? values.slice() : [];
    var box = h("div", { "class": "multi-pick-options", role: "group", "aria-label": legendText });
    var fieldset = h("fieldset", { "class": "multi-pick", id: id, "data-testid": "multi-pick" },
      h("legend", { "class": "visually-hidden", text: legendText }));
    function draw(items) {
      box.textContent = "";
      var known = items.map(function (item) { return item.value; });
      // Values in the tree that the data no longer has stay visible, so they can be unticked.
      var all = items.concat(list.filter(function (value) { return known.indexOf(value) === -1; })
        .map(function (value) { return { value: value, label: String(value) }; }));
      if (!all.length) {
        box.appendChild(h("p", { "class": "muted", text: T.no_values }));
      }
      all.forEach(function (item, position) {
        var checkboxId = id + "-" + position;
        var checkbox = h("input", {
          type: "checkbox", id: checkboxId, value: String(item.value),
          checked: list.indexOf(item.value) !== -1,
          onchange: function () {
            var at = list.indexOf(item.value);
            if (checkbox.checked && at === -1) {
              list.push(item.value);
            } else if (!checkbox.checked && at !== -1) {
              list.splice(at, 1);
            }
            onChange(list.slice());
          }
        });
        box.appendChild(h("label", { "class": "multi-pick-option", "for": checkboxId, "data-value": String(item.value) },
          checkbox, " " + item.label));
      });
    }
    var filter = h("input", { type: "search", id: id + "-filter", placeholder: T.filter_values, "class": "multi-pick-filter", "aria-label": T.filter_values });
    filter.addEventListener("input", function () {
      var text = filter.value.trim().toLowerCase();
      Array.prototype.forEach.call(box.querySelectorAll(".multi-pick-option"), function (option) {
        option.hidden = Boolean(text) && option.textContent.toLowerCase().indexOf(text) === -1;
      });
    });
    fieldset.appendChild(filter);
    fieldset.appendChild(box);
    if (typeof choices === "function") {
      box.appendChild(h("p", { "class": "muted", text: T.loading }));
      choices().then(draw);
    } else {
      draw(choices);
    }
    return fieldset;
  }

  // --- value editors --------------------------------------------------------------------------

  function pairEditor(id, path, value, makeInput, onChange) {
    var pair = Array.isArray(value) && value.length === 2 ? value.slice() : [null, null];
    return h("span", { "class": "value-pair" },
      label(id + "-from", T.from, true),
      makeInput(id + "-from", pair[0], function (item) { pair[0] = item; onChange(pair.slice()); }, { "data-path": path + "[0]" }),
      h("span", { "class": "muted", text: " " + T.and + " " }),
      label(id + "-to", T.to, true),
      makeInput(id + "-to", pair[1], function (item) { pair[1] = item; onChange(pair.slice()); }, { "data-path": path + "[1]" }));
  }

  function linesEditor(id, path, values, type, onChange) {
    var area = h("textarea", { id: id, rows: 3, "class": "value-lines", "data-path": path, "aria-label": T.values_one_per_line, placeholder: T.values_one_per_line });
    area.value = (Array.isArray(values) ? values : []).map(shown).join("\n");
    area.addEventListener("input", function () {
      onChange(area.value.split("\n").filter(function (line) { return line.trim() !== ""; })
        .map(function (line) { return typedValue(line.trim(), type); }));
    });
    return area;
  }

  /* The value of a custom attribute or an event property: its JSON type is chosen with it. */
  function typedScalarEditor(id, path, op, value, hasValue, onChange, rerender) {
    var shape = valueShape(op);
    if (shape === "none") {
      return null;
    }
    if (shape === "pair" || NUMBER_ONLY_OPS[op]) {
      return shape === "pair"
        ? pairEditor(id, path, value, numberInput, onChange)
        : [label(id, T.value, true), numberInput(id, value, onChange, { "data-path": path })];
    }
    if (TEXT_ONLY_OPS[op]) {
      return [label(id, T.value, true), textInput(id, value, onChange, { "data-path": path })];
    }
    var items = Array.isArray(value) ? value : [value];
    var type = typeOf(items.length ? items[0] : "");
    var types = [{ value: "text", label: T.type_text }, { value: "number", label: T.type_number }];
    if (shape !== "list") {
      types.push({ value: "bool", label: T.type_bool });
    }
    var typeSelect = select(id + "-type", types, type, function (newType) {
      if (shape === "list") {
        onChange(items.map(function (item) { return typedValue(shown(item), newType); }).filter(function (item) { return item !== null; }));
      } else {
        onChange(newType === "bool" ? true : typedValue(typeof value === "boolean" ? "" : shown(value), newType));
      }
      rerender();
    }, { "aria-label": T.value_type, "class": "value-type" });
    var editor;
    if (shape === "list") {
      editor = linesEditor(id, path, value, type, onChange);
    } else if (type === "bool") {
      editor = [label(id, T.value, true), select(id, [{ value: "true", label: T.yes }, { value: "false", label: T.no }],
        value ? "true" : "false", function (text) { onChange(text === "true"); }, { "data-path": path })];
    } else {
      editor = [label(id, T.value, true), textInput(id, value, function (text) { onChange(typedValue(text, type)); }, { "data-path": path, "class": type === "number" ? "input-number" : null })];
    }
    return [editor, label(id + "-type", T.value_type, true), typeSelect];
  }

  function fieldValueEditor(node, spec, path) {
    var id = "n" + node.uid + "-value";
    var valuePath = join(path, "value");
    var shape = valueShape(node.op);
    function update(value) { node.value = value; changed(); }
    if (shape === "none" || node.op === undefined) {
      return null;
    }
    if (spec.type === "attribute") {
      return typedScalarEditor(id, valuePath, node.op, node.value, node.hasValue, update, render);
    }
    if (spec.type === "choice") {
      var choices = (spec.choices || []).map(function (choice) { return { value: choice.value, label: choice.label }; });
      return multiPick(id, spec.label, choices, node.value, update);
    }
    if (spec.type === "number" || (spec.type === "date" && DAY_OPS[node.op])) {
      var extra = spec.is_integer || DAY_OPS[node.op] ? { step: "1" } : {};
      var numberEditor = function (inputId, value, onInput, attributes) {
        return numberInput(inputId, value, onInput, Object.assign({}, extra, attributes));
      };
      if (shape === "pair") {
        return pairEditor(id, valuePath, node.value, numberEditor, update);
      }
      return [label(id, T.value, true), numberEditor(id, node.value, update, { "data-path": valuePath }),
        DAY_OPS[node.op] ? h("span", { "class": "muted", text: " " + T.days }) : null];
    }
    if (spec.type === "date") {
      var dateEditor = function (inputId, value, onInput, attributes) {
        var input = h("input", Object.assign({ type: "date", id: inputId, value: shown(value) }, attributes));
        input.addEventListener("input", function () { onInput(input.value || null); });
        return input;
      };
      if (shape === "pair") {
        return pairEditor(id, valuePath, node.value, dateEditor, update);
      }
      return [label(id, T.value, true), dateEditor(id, node.value, update, { "data-path": valuePath })];
    }
    // text
    var knownKind = config.known_value_fields[spec.key];
    if (shape === "list") {
      if (knownKind) {
        return multiPick(id, spec.label, function () {
          return fetchValues(knownKind).then(function (values) {
            return values.map(function (value) { return { value: value, label: value }; });
          });
        }, node.value, update);
      }
      return linesEditor(id, valuePath, node.value, "text", update);
    }
    if (knownKind && (node.op === "eq" || node.op === "ne")) {
      return [label(id, T.value, true)].concat(suggestInput(id, node.value, knownKind, update, { attributes: { "data-path": valuePath } }));
    }
    return [label(id, T.value, true), textInput(id, node.value, update, { "data-path": valuePath })];
  }

  // --- nodes ----------------------------------------------------------------------------------

  function join(path, key) {
    return path ? path + "." + key : key;
  }

  function fieldOptions(current) {
    var groups = [];
    var byGroup = {};
    config.fields.forEach(function (spec) {
      if (!byGroup[spec.group]) {
        byGroup[spec.group] = { group: spec.group_label, options: [] };
        groups.push(byGroup[spec.group]);
      }
      byGroup[spec.group].options.push({ value: spec.key, label: spec.label });
    });
    groups.push({ group: config.attribute.group_label, options: [{ value: ATTRIBUTE_PREFIX, label: T.custom_attribute }] });
    var options = [{ value: "", label: T.choose_field }];
    if (current && !FIELDS[current] && current.indexOf(ATTRIBUTE_PREFIX) !== 0) {
      options.push({ value: current, label: format(T.unknown_field, { key: current }) });
    }
    return options.concat(groups);
  }

  function fieldPicker(node, path) {
    var id = "n" + node.uid + "-field";
    var isAttribute = typeof node.field === "string" && node.field.indexOf(ATTRIBUTE_PREFIX) === 0;
    var picker = select(id, fieldOptions(node.field), isAttribute ? ATTRIBUTE_PREFIX : node.field, function (key) {
      setField(node, key);
      if (key === ATTRIBUTE_PREFIX) {
        pendingFocus = "n" + node.uid + "-attribute";
      }
      changed();
      render();
    }, { "data-path": join(path, "field"), "class": "field-select" });
    var search = h("input", { type: "search", id: id + "-search", "class": "field-search", placeholder: T.search_fields, "aria-label": T.search_fields, "aria-controls": id });
    search.addEventListener("input", function () {
      var text = search.value.trim().toLowerCase();
      Array.prototype.forEach.call(picker.querySelectorAll("optgroup"), function (group) {
        var visible = 0;
        Array.prototype.forEach.call(group.querySelectorAll("option"), function (option) {
          var matches = !text || option.textContent.toLowerCase().indexOf(text) !== -1 || option.value.toLowerCase().indexOf(text) !== -1;
          option.hidden = !matches;
          visible += matches ? 1 : 0;
        });
        group.hidden = visible === 0;
      });
    });
    var parts = [label(id + "-search", T.search_fields, true), search, label(id, T.field, true), picker];
    if (isAttribute) {
      parts.push(label("n" + node.uid + "-attribute", T.attribute_key, true));
      parts.push(textInput("n" + node.uid + "-attribute", node.field.slice(ATTRIBUTE_PREFIX.length), function (text) {
        node.field = ATTRIBUTE_PREFIX + text;
        changed();
      }, { placeholder: T.attribute_key, "data-path": join(path, "field"), "class": "attribute-key" }));
    }
    return parts;
  }

  function fieldBody(node, path) {
    var spec = specOf(node.field);
    var parts = [fieldPicker(node, path)];
    if (spec) {
      var opId = "n" + node.uid + "-op";
      var ops = spec.ops.map(function (item) { return { value: item.op, label: item.label }; });
      if (node.op !== undefined && opKeys(spec).indexOf(node.op) === -1) {
        ops.unshift({ value: String(node.op), label: String(node.op) });
      }
      if (node.op === undefined) {
        ops.unshift({ value: "", label: "—" });
      }
      parts.push(label(opId, T.op, true));
      parts.push(select(opId, ops, node.op === undefined ? "" : String(node.op), function (op) {
        setOp(node, spec, op);
        changed();
        render();
      }, { "data-path": join(path, "op"), "class": "op-select" }));
      parts.push(fieldValueEditor(node, spec, path));
      if (spec.help_text) {
        parts.push(h("small", { "class": "help rule-help", text: spec.help_text }));
      }
    }
    return parts;
  }

  function tagBody(node, path) {
    var opId = "n" + node.uid + "-tag-op";
    var tagId = "n" + node.uid + "-tag";
    return [
      label(opId, T.tag_op, true),
      select(opId, [{ value: "present", label: T.has_tag }, { value: "absent", label: T.lacks_tag }],
        node.op === "absent" ? "absent" : "present", function (op) {
          // {"tag": name} is the plain form; an explicit "present" from the stored tree stays.
          node.op = op === "absent" ? "absent" : (node.op === "present" ? "present" : undefined);
          changed();
        }, { "data-path": join(path, "op") }),
      label(tagId, T.tag, true)
    ].concat(suggestInput(tagId, node.tag, "tag", function (text) { node.tag = text; changed(); },
      { typeahead: true, attributes: { "data-path": join(path, "tag"), placeholder: T.tag, "class": "tag-input" } }));
  }

  function windowEditor(owner, idBase, path, isRequired) {
    var unitId = idBase + "-unit";
    var amountId = idBase + "-amount";
    var units = [{ value: "days", label: T.days }, { value: "hours", label: T.hours }];
    if (!isRequired) {
      units.push({ value: "", label: T.any_time });
    }
    var windowValue = owner.window;
    var parts = [h("span", { "class": "rule-word", text: isRequired ? T.follow_up_within : T.within })];
    if (windowValue) {
      parts.push(label(amountId, T.window_amount, true));
      parts.push(numberInput(amountId, windowValue.amount, function (amount) {
        owner.window.amount = amount;
        changed();
      }, { step: "1", min: "1", "data-path": join(path, "within_" + windowValue.unit) }));
    }
    parts.push(label(unitId, T.window, true));
    parts.push(select(unitId, units, windowValue ? windowValue.unit : "", function (unit) {
      owner.window = unit ? { unit: unit, amount: windowValue ? windowValue.amount : (unit === "days" ? 7 : 24) } : null;
      changed();
      render();
    }, { "class": "window-unit" }));
    return parts;
  }

  function whereEditor(owner, idBase, path, eventName) {
    var rows = owner.where.map(function (row) {
      var rowId = idBase + "-p" + row.uid;
      var rowPath = join(join(path, "where"), row.key);
      var ops = config.property_ops.map(function (item) { return { value: item.op, label: item.label }; });
      return h("div", { "class": "where-row", "data-testid": "where-row" },
        h("span", { "class": "rule-word", text: T.where }),
        label(rowId + "-key", T.property_key, true),
        suggestInput(rowId + "-key", row.key, "event_property", function (text) { row.key = text; changed(); },
          { params: function () { return { event: eventName() }; }, attributes: { placeholder: T.property_key, "data-path": rowPath, "class": "property-key" } }),
        label(rowId + "-op", T.property_op, true),
        select(rowId + "-op", ops, row.op, function (op) {
          var shape = valueShape(op);
          var oldShape = valueShape(row.op);
          if (op !== "eq") {
            row.isObject = true;
          }
          row.hasValue = shape !== "none";
          if (shape !== oldShape) {
            row.value = shape === "pair" ? [null, null] : shape === "list" ? [] : shape === "none" ? undefined : (NUMBER_ONLY_OPS[op] ? null : "");
          } else if (NUMBER_ONLY_OPS[op] && typeof row.value !== "number") {
            row.value = typedValue(shown(row.value), "number");
          }
          row.op = op;
          changed();
          render();
        }, { "data-path": join(rowPath, "op") }),
        typedScalarEditor(rowId + "-value", row.isObject ? join(rowPath, "value") : rowPath, row.op, row.value, row.hasValue,
          function (value) { row.value = value; changed(); }, render),
        button(T.remove_property, function () {
          owner.where.splice(owner.where.indexOf(row), 1);
          changed();
          render();
        }, { "class": "button-link rule-remove-property" }));
    });
    rows.push(button(T.add_property, function () {
      var row = { uid: nextUid++, key: "", op: "eq", isObject: false, hasValue: true, value: "" };
      owner.where.push(row);
      pendingFocus = idBase + "-p" + row.uid + "-key";
      changed();
      render();
    }, { "class": "button-link rule-add-property" }));
    return h("div", { "class": "where-rows" }, rows);
  }

  function countEditor(node, path) {
    var id = "n" + node.uid + "-count";
    var ops = [{ value: "", label: T.at_least_once }].concat(config.count_ops.map(function (item) {
      return { value: item.op, label: T.count_prefix + " " + item.label };
    }));
    var parts = [label(id + "-op", T.count, true), select(id + "-op", ops, node.count ? node.count.op : "", function (op) {
      if (!op) {
        node.count = null;
      } else {
        var old = node.count;
        var oldValue = old ? old.value : 1;
        var value = op === "between"
          ? (Array.isArray(oldValue) ? oldValue : [oldValue, null])
          : (Array.isArray(oldValue) ? oldValue[0] : oldValue);
        node.count = { op: op, hasValue: true, value: value };
      }
      changed();
      render();
    }, { "data-path": join(join(path, "count"), "op"), "class": "count-op" })];
    if (node.count) {
      var countPath = join(join(path, "count"), "value");
      var update = function (value) { node.count.value = value; node.count.hasValue = true; changed(); };
      var wholeInput = function (inputId, value, onInput, attributes) {
        return numberInput(inputId, value, onInput, Object.assign({ step: "1", min: "0" }, attributes));
      };
      if (node.count.op === "between") {
        parts.push(pairEditor(id, countPath, node.count.value, wholeInput, update));
      } else {
        parts.push(label(id, T.count_value, true));
        parts.push(wholeInput(id, node.count.value, update, { "data-path": countPath, "class": "input-number count-value" }));
      }
    }
    return parts;
  }

  function followUpEditor(node, key, path) {
    var followUp = node[key];
    var idBase = "n" + node.uid + "-" + key;
    var here = join(path, key);
    return h("div", { "class": "follow-up", "data-testid": key },
      h("div", { "class": "rule-line" },
        h("span", { "class": "rule-word rule-follow-word", text: T[key] }),
        label(idBase + "-event", T.event_name, true),
        suggestInput(idBase + "-event", followUp.event, "event", function (text) { followUp.event = text; changed(); },
          { attributes: { placeholder: T.event_name, "data-path": join(here, "event"), "class": "event-name" } }),
        windowEditor(followUp, idBase, here, true),
        button(T.remove_follow_up, function () { node[key] = null; changed(); render(); }, { "class": "button-link" })),
      whereEditor(followUp, idBase, here, function () { return followUp.event; }));
  }

  function eventBody(node, path) {
    var idBase = "n" + node.uid;
    var parts = [
      h("div", { "class": "rule-line" },
        label(idBase + "-event", T.event_name, true),
        suggestInput(idBase + "-event", node.event, "event", function (text) { node.event = text; changed(); },
          { attributes: { placeholder: T.event_name, "data-path": join(path, "event"), "class": "event-name" } }),
        windowEditor(node, idBase, path, false),
        countEditor(node, path)),
      whereEditor(node, idBase, path, function () { return node.event; })
    ];
    var adders = [];
    ["followed_by", "not_followed_by"].forEach(function (key) {
      if (node[key]) {
        parts.push(followUpEditor(node, key, path));
      } else {
        adders.push(button(T["add_" + key], function () {
          node[key] = { event: "", window: { unit: "hours", amount: 24 }, where: [] };
          pendingFocus = idBase + "-" + key + "-event";
          changed();
          render();
        }, { "class": "button-link rule-add-follow-up", "data-add": key }));
      }
    });
    if (adders.length) {
      parts.push(h("div", { "class": "rule-line" }, adders));
    }
    return parts;
  }

  function segmentBody(node, path) {
    var id = "n" + node.uid + "-segment";
    var options = [{ value: "", label: T.choose_segment }].concat(config.segments.map(function (segment) {
      return { value: String(segment.id), label: segment.name };
    }));
    var known = config.segments.some(function (segment) { return segment.id === node.segment; });
    if (node.segment !== null && !known) {
      options.push({ value: String(node.segment), label: format(T.missing_segment, { id: node.segment }) });
    }
    return [label(id, T.segment, true), select(id, options, node.segment === null ? "" : String(node.segment), function (value) {
      node.segment = value ? Number(value) : null;
      changed();
    }, { "data-path": join(path, "segment") })];
  }

  function rawBody(node, path) {
    var id = "n" + node.uid + "-raw";
    var area = h("textarea", { id: id, rows: Math.min(12, node.text.split("\n").length + 1), "class": "rule-raw", "data-path": path, spellcheck: "false" });
    area.value = node.text;
    area.addEventListener("input", function () { node.text = area.value; changed(); });
    return [label(id, T.raw), area];
  }

  function kindPicker(node) {
    var id = "n" + node.uid + "-kind";
    var kinds = [
      { value: "field", label: T.kind_field }, { value: "tag", label: T.kind_tag },
      { value: "event", label: T.kind_event }, { value: "segment", label: T.kind_segment }
    ];
    return [label(id, T.condition_type, true), select(id, kinds, node.kind, function (kind) {
      var fresh = newNode(kind);
      fresh.uid = node.uid;
      replaceNode(node, fresh);
      pendingFocus = id;
      changed();
      render();
    }, { "class": "kind-select" })];
  }

  // --- structure ------------------------------------------------------------------------------

  function parentOf(target, node, parent) {
    node = node || state.root;
    if (node === target) {
      return parent || null;
    }
    var children = node.kind === "group" ? node.children : node.kind === "not" ? [node.child] : [];
    for (var i = 0; i < children.length; i++) {
      var found = parentOf(target, children[i], node);
      if (found) {
        return found;
      }
    }
    return null;
  }

  function replaceNode(target, replacement) {
    var parent = parentOf(target);
    if (!parent) {
      state.root = replacement;
    } else if (parent.kind === "group") {
      parent.children[parent.children.indexOf(target)] = replacement;
    } else {
      parent.child = replacement;
    }
  }

  function removeNode(target) {
    var parent = parentOf(target);
    if (!parent) {
      state.root = newNode("group");
    } else if (parent.kind === "group") {
      var at = parent.children.indexOf(target);
      parent.children.splice(at, 1);
      var next = parent.children[at] || parent.children[at - 1];
      pendingFocus = next ? "n" + next.uid + "-actions" : "n" + parent.uid + "-add";
    } else {
      removeNode(parent); // a NOT with nothing in it means nothing
    }
  }

  function actions(node, path, isRoot) {
    var items = [];
    if (node.kind === "not") {
      items.push(button(T.remove_not, function () {
        replaceNode(node, node.child);
        pendingFocus = "n" + node.child.uid + "-actions";
        changed();
        render();
      }, { "data-action": "unwrap-not" }));
    } else {
      items.push(button(T.negate, function () {
        replaceNode(node, { kind: "not", uid: nextUid++, child: node });
        pendingFocus = "n" + node.uid + "-actions";
        changed();
        render();
      }, { "data-action": "negate" }));
    }
    if (isRoot && node.kind !== "group") {
      items.push(button(T.wrap_group, function () {
        var group = newNode("group");
        group.children.push(node);
        state.root = group;
        changed();
        render();
      }, { "data-action": "wrap-group" }));
    }
    if (!isRoot) {
      items.push(button(T.remove, function () {
        removeNode(node);
        changed();
        render();
      }, { "class": "rule-remove", "data-action": "remove" }));
    }
    return h("div", { "class": "rule-actions", id: "n" + node.uid + "-actions", tabindex: "-1" }, items);
  }

  function renderNode(node, path, isRoot) {
    var element = h("div", {
      "class": "rule-node rule-" + node.kind, "data-uid": String(node.uid), "data-path": path,
      "data-kind": node.kind, "data-testid": "rule-node"
    });
    var errors = h("ul", { "class": "rule-errors", id: "n" + node.uid + "-errors", role: "alert" });
    if (node.kind === "group") {
      var opId = "n" + node.uid + "-op";
      element.appendChild(h("div", { "class": "rule-head" },
        h("span", { "class": "rule-word", text: T.match }),
        label(opId, T.match, true),
        select(opId, [{ value: "all", label: T.all }, { value: "any", label: T.any }], node.op, function (op) {
          node.op = op;
          changed();
          render();
        }, { "class": "group-op", "data-testid": "group-op" }),
        h("span", { "class": "rule-word", text: T.of_these }),
        actions(node, path, isRoot)));
      element.appendChild(errors);
      var list = h("div", { "class": "rule-children" });
      node.children.forEach(function (child, position) {
        list.appendChild(renderNode(child, join(path, node.op) + "[" + position + "]", false));
      });
      if (!node.children.length) {
        list.appendChild(h("p", { "class": "muted rule-empty", text: node.op === "all" ? T.empty_all : T.empty_any }));
      }
      element.appendChild(list);
      element.appendChild(h("div", { "class": "rule-add" },
        button(T.add_condition, function () {
          var child = newNode("field");
          node.children.push(child);
          pendingFocus = "n" + child.uid + "-field-search";
          changed();
          render();
        }, { id: "n" + node.uid + "-add", "data-action": "add-condition" }),
        button(T.add_group, function () {
          var group = newNode("group");
          node.children.push(group);
          pendingFocus = "n" + group.uid + "-op";
          changed();
          render();
        }, { "data-action": "add-group" })));
      return element;
    }
    if (node.kind === "not") {
      element.appendChild(h("div", { "class": "rule-head" },
        h("span", { "class": "rule-word rule-not-word", text: T.not_label }), actions(node, path, isRoot)));
      element.appendChild(errors);
      element.appendChild(h("div", { "class": "rule-children" }, renderNode(node.child, join(path, "not"), false)));
      return element;
    }
    var body;
    if (node.kind === "field") {
      body = fieldBody(node, path);
    } else if (node.kind === "tag") {
      body = tagBody(node, path);
    } else if (node.kind === "event") {
      body = eventBody(node, path);
    } else if (node.kind === "segment") {
      body = segmentBody(node, path);
    } else {
      body = rawBody(node, path);
    }
    element.appendChild(h("div", { "class": "rule-head" },
      node.kind === "raw" ? null : kindPicker(node),
      node.kind === "event" ? h("div", { "class": "rule-body" }, body) : h("div", { "class": "rule-body rule-line" }, body),
      actions(node, path, isRoot)));
    element.appendChild(errors);
    return element;
  }

  // --- errors at their nodes ------------------------------------------------------------------

  function nodePaths(node, path, into) {
    into.push({ path: path, uid: node.uid });
    if (node.kind === "group") {
      node.children.forEach(function (child, position) {
        nodePaths(child, join(path, node.op) + "[" + position + "]", into);
      });
    } else if (node.kind === "not") {
      nodePaths(node.child, join(path, "not"), into);
    }
    return into;
  }

  function isWithin(path, prefix) {
    if (!prefix) {
      return true;
    }
    return path === prefix || path.indexOf(prefix + ".") === 0 || path.indexOf(prefix + "[") === 0;
  }

  function showErrors(errors) {
    state.errors = errors || [];
    Array.prototype.forEach.call(mount.querySelectorAll(".rule-errors"), function (list) { list.textContent = ""; });
    Array.prototype.forEach.call(mount.querySelectorAll("[aria-invalid]"), function (input) {
      input.removeAttribute("aria-invalid");
      input.removeAttribute("aria-describedby");
    });
    Array.prototype.forEach.call(mount.querySelectorAll(".rule-has-errors"), function (element) {
      element.classList.remove("rule-has-errors");
    });
    if (!state.errors.length) {
      return;
    }
    var paths = nodePaths(state.root, "", []);
    state.errors.forEach(function (error) {
      var errorPath = error.path || "";
      var best = null;
      paths.forEach(function (candidate) {
        if (isWithin(errorPath, candidate.path) && (!best || candidate.path.length > best.path.length)) {
          best = candidate;
        }
      });
      if (!best) {
        return;
      }
      var list = document.getElementById("n" + best.uid + "-errors");
      if (!list) {
        return;
      }
      list.appendChild(h("li", { "data-path": errorPath, text: error.message }));
      list.parentNode.classList.add("rule-has-errors");
      var nodeElement = list.parentNode;
      Array.prototype.forEach.call(nodeElement.querySelectorAll("[data-path]"), function (input) {
        if (input.closest(".rule-node") !== nodeElement || input.tagName === "LI") {
          return;
        }
        var inputPath = input.getAttribute("data-path");
        if (errorPath && (isWithin(errorPath, inputPath) || isWithin(inputPath, errorPath))) {
          input.setAttribute("aria-invalid", "true");
          input.setAttribute("aria-describedby", list.id);
        }
      });
    });
  }

  // --- the live count -------------------------------------------------------------------------

  var countElement = document.getElementById("preview-count");
  var statusElement = document.getElementById("preview-status");
  var sampleElement = document.getElementById("preview-sample");
  var jsonElement = document.getElementById("builder-json");
  var csrfInput = document.querySelector("#segment-form input[name=csrfmiddlewaretoken]");
  var previewTimer = null;
  var previewNumber = 0;
  var previewAbort = null;
  var numbers = new Intl.NumberFormat(document.documentElement.lang || undefined);

  function schedulePreview() {
    clearTimeout(previewTimer);
    if (statusElement) {
      statusElement.textContent = T.counting;
    }
    previewTimer = setTimeout(runPreview, PREVIEW_DELAY);
    scheduleExplain();
  }

  function showCount(data) {
    var count = numbers.format(data.count);
    var words = format(data.count === 1 ? T.count_one : T.count_other, { count: count });
    var took = format(T.took, { ms: numbers.format(Math.round(data.sql_ms)) });
    countElement.textContent = words + " · " + took;
    countElement.setAttribute("data-count", String(data.count));
    statusElement.textContent = "";
    sampleElement.textContent = "";
    (data.sample || []).forEach(function (customer) {
      sampleElement.appendChild(h("li", { "data-customer-id": String(customer.id) },
        h("a", { href: customer.url, text: customer.name || customer.external_id }),
        " ", h("span", { "class": "muted mono", text: customer.external_id }),
        customer.city ? h("span", { "class": "muted", text: " · " + customer.city }) : null));
    });
    if (!data.sample || !data.sample.length) {
      sampleElement.appendChild(h("li", { "class": "muted", text: T.no_sample }));
    }
  }

  function showInvalid(errors) {
    countElement.textContent = "—";
    countElement.removeAttribute("data-count");
    statusElement.textContent = T.invalid;
    sampleElement.textContent = "";
    showErrors(errors);
  }

  function runPreview() {
    var number = ++previewNumber;
    if (previewAbort) {
      previewAbort.abort();
    }
    previewAbort = typeof AbortController === "function" ? new AbortController() : null;
    fetch(config.urls.preview, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRFToken": csrfInput ? csrfInput.value : ""
      },
      body: JSON.stringify({ rules: serialise(state.root) }),
      signal: previewAbort ? previewAbort.signal : undefined
    }).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (data) {
        if (number !== previewNumber) {
          return; // a later change has its own request
        }
        if (response.ok && data) {
          showErrors([]);
          showCount(data);
        } else if (response.status === 400 && data && data.errors) {
          showInvalid(data.errors);
        } else {
          countElement.textContent = "—";
          statusElement.textContent = format(T.preview_failed, { status: response.status });
        }
      });
    }).catch(function (error) {
      if (error && error.name === "AbortError") {
        return;
      }
      if (number === previewNumber) {
        statusElement.textContent = format(T.preview_failed, { status: String(error) });
      }
    });
  }

  // --- why is a customer in or not in these rules? ---------------------------------------------
  // Once a customer was asked for, every change of the tree explains it again (debounced as the
  // count is). The server answers an HTML fragment: the explain tree, or the problems (400).

  var explainBox = document.getElementById("builder-explain");
  var explainInput = document.getElementById("builder-explain-customer");
  var explainButton = document.getElementById("builder-explain-run");
  var explainStatus = document.getElementById("builder-explain-status");
  var explainResult = document.getElementById("builder-explain-result");
  var explainCustomer = ""; // what was asked for last; empty until then
  var explainTimer = null;
  var explainNumber = 0;
  var explainAbort = null;

  function scheduleExplain() {
    if (!explainBox || !explainCustomer) {
      return;
    }
    clearTimeout(explainTimer);
    explainTimer = setTimeout(runExplain, PREVIEW_DELAY);
  }

  function runExplain() {
    var number = ++explainNumber;
    if (explainAbort) {
      explainAbort.abort();
    }
    explainAbort = typeof AbortController === "function" ? new AbortController() : null;
    explainStatus.textContent = explainBox.getAttribute("data-loading");
    var body = new URLSearchParams();
    body.append("rules", JSON.stringify(serialise(state.root)));
    body.append("customer", explainCustomer);
    body.append("segment", explainBox.getAttribute("data-segment") || "");
    fetch(explainBox.getAttribute("data-url"), {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "text/html", "X-CSRFToken": csrfInput ? csrfInput.value : "" },
      body: body,
      signal: explainAbort ? explainAbort.signal : undefined
    }).then(function (response) {
      return response.text().then(function (fragment) {
        if (number !== explainNumber) {
          return; // a later change has its own request
        }
        if (response.ok || response.status === 400) {
          explainStatus.textContent = "";
          explainResult.innerHTML = fragment; // rendered and escaped by the server's templates
        } else {
          explainStatus.textContent = format(explainBox.getAttribute("data-failed"), { status: response.status });
        }
      });
    }).catch(function (error) {
      if (error && error.name === "AbortError") {
        return;
      }
      if (number === explainNumber) {
        explainStatus.textContent = format(explainBox.getAttribute("data-failed"), { status: String(error) });
      }
    });
  }

  function askExplain() {
    explainCustomer = explainInput.value.trim();
    clearTimeout(explainTimer);
    if (!explainCustomer) {
      explainNumber++; // an answer still on its way is no longer wanted
      explainStatus.textContent = "";
      explainResult.textContent = "";
      return;
    }
    runExplain();
  }

  if (explainBox && explainInput && explainButton) {
    explainButton.addEventListener("click", askExplain);
    // The box sits inside the segment's form: Enter explains instead of saving the segment.
    explainInput.addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        event.preventDefault();
        askExplain();
      }
    });
  }

  // --- the page -------------------------------------------------------------------------------

  function writeHidden() {
    var text = JSON.stringify(serialise(state.root));
    hidden.value = text;
    if (jsonElement) {
      jsonElement.textContent = JSON.stringify(serialise(state.root), null, 2);
    }
  }

  function changed() {
    writeHidden();
    schedulePreview();
  }

  function render() {
    var active = document.activeElement && mount.contains(document.activeElement) ? document.activeElement.id : null;
    mount.textContent = "";
    mount.appendChild(renderNode(state.root, "", true));
    showErrors(state.errors);
    var focusId = pendingFocus || active;
    pendingFocus = null;
    if (focusId) {
      var target = document.getElementById(focusId);
      if (target) {
        target.focus();
      }
    }
  }

  function load(json) {
    state.root = parseNode(json);
    state.errors = [];
    render();
    writeHidden();
    schedulePreview();
  }

  var initial;
  try {
    initial = JSON.parse(hidden.value || "{\"all\": []}");
  } catch (error) {
    initial = null;
  }
  if (initial === null && hidden.value) {
    state.root = { kind: "raw", uid: nextUid++, text: hidden.value };
    state.errors = [{ path: "", message: T.bad_json }];
    render();
    schedulePreview();
  } else {
    state.errors = config.errors || [];
    state.root = parseNode(initial === null ? { all: [] } : initial);
    render();
    writeHidden();
    schedulePreview();
  }

  var templateSelect = document.getElementById("template-select");
  var templateButton = document.getElementById("template-use");
  if (templateSelect && templateButton) {
    templateButton.addEventListener("click", function () {
      var chosen = config.templates.filter(function (template) { return String(template.id) === templateSelect.value; })[0];
      if (!chosen) {
        return;
      }
      load(JSON.parse(JSON.stringify(chosen.definition)));
      statusElement.textContent = format(T.template_loaded, { name: chosen.name });
      var description = document.getElementById("segment-description");
      if (description && !description.value.trim() && chosen.description) {
        description.value = chosen.description;
      }
    });
  }

  var form = document.getElementById("segment-form");
  if (form) {
    form.addEventListener("submit", writeHidden);
  }
  // Enter in a condition's input would submit (save) the whole segment: keep it in the builder.
  mount.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && event.target.tagName === "INPUT") {
      event.preventDefault();
    }
  });
})();
