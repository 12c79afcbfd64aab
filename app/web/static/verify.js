/* 亮证核验 page: reads what the holder's QR shows (an online code, a verification link
 * …/verify?code=…, or an offline SD-JWT), asks POST /api/v1/verifications and shows the answer.
 * A verifier client may sign in (client_credentials); its token lives in sessionStorage only.
 * Every value from the network goes in through textContent, never as markup. */
(function () {
  "use strict";

  var API = "/api/v1";
  var TOKEN_KEY = "ias.verifier";
  // every `reason` of app/wallet/verification.py DETAILS (tests/test_wallet_reasons.py checks)
  var REASONS = {
    expired: "已过期",
    used: "已被使用（一次性核验码只能使用一次）",
    revoked: "已吊销",
    suspended: "已暂停",
    bad_signature: "签名无效或被篡改",
    unknown: "无法识别",
    cancelled: "持证人已结束本次亮证",
    device_removed: "证照绑定的手机已被移除或挂失",
    device_binding_required: "需持证人用手机设备密钥亮证",
    wrong_nonce: "不是为本次核验生成的亮证",
    wrong_audience: "不是出示给本核验方的亮证",
    wrong_type: "证照类型不是所请求的类型"
  };
  var SHOWN_BY = { holder: "持证人本人", guardian: "监护人", representative: "法定代表人", agent: "经办人" };
  var labelCache = {};

  var form = document.getElementById("verify-form");
  var input = document.getElementById("presentation");
  var button = document.getElementById("verify-button");
  var result = document.getElementById("result");
  var loginForm = document.getElementById("verifier-form");
  var logoutButton = document.getElementById("verifier-logout");
  var status = document.getElementById("verifier-status");

  // ---- helpers

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function stamp(date) {
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + " " +
      pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
  }

  function show(value) {
    if (value === true) return "是";
    if (value === false) return "否";
    if (value === null || value === undefined || value === "") return "—";
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function facts(rows) {
    var dl = el("dl", null, "facts");
    rows.forEach(function (row) {
      if (row[1] === undefined || row[1] === null || row[1] === "") return;
      dl.appendChild(el("dt", row[0]));
      dl.appendChild(el("dd", row[1]));
    });
    return dl;
  }

  function verdict(ok, text) {
    var p = el("p", null, "verdict");
    var mark = el("span", ok ? "✓" : "✗", "mark");
    mark.setAttribute("aria-hidden", "true");
    p.appendChild(mark);
    p.appendChild(el("span", text, "verdict-text"));
    return p;
  }

  // What was typed: {code}, {sd_jwt} or {error}.
  function classify(raw) {
    var text = (raw || "").trim();
    if (!text) return { error: "请先扫描或输入亮证码。" };
    if (/^https?:\/\//i.test(text) || text.indexOf("/verify?") === 0) {
      var url;
      try { url = new URL(text, window.location.origin); } catch (e) { return { error: "核验链接格式不正确。" }; }
      var code = url.searchParams.get("code");
      if (code) return { code: code.trim() };
      var sdJwt = url.searchParams.get("sd_jwt");
      if (sdJwt) return { sd_jwt: sdJwt.trim() };
      return { error: "链接中没有亮证码。" };
    }
    var compact = text.replace(/\s+/g, "");
    if (compact.indexOf("~") !== -1) return { sd_jwt: compact };
    return { code: compact };
  }

  // ---- verifier sign-in (token in sessionStorage, gone when the tab closes)

  function verifier() {
    try {
      var saved = JSON.parse(window.sessionStorage.getItem(TOKEN_KEY) || "null");
      if (saved && saved.token && saved.expiresAt > Date.now() + 5000) return saved;
    } catch (e) { /* unreadable: treat as signed out */ }
    window.sessionStorage.removeItem(TOKEN_KEY);
    return null;
  }

  function renderVerifier(message) {
    var saved = verifier();
    status.textContent = "";
    if (saved) {
      var p = el("p", "已登录核验方：");
      p.appendChild(el("strong", saved.name || saved.clientId));
      status.appendChild(p);
      if (!saved.isVerifier) status.appendChild(el("p", "该客户端不是登记的核验方，核验时仅显示基本信息。", "help"));
      else status.appendChild(el("p", "核验时将显示持证人授权披露、且您有权查看的字段。", "help"));
    } else {
      status.appendChild(el("p", "当前为匿名核验：只显示是否有效、证照类型、签发机关和脱敏姓名。已登记的核验方（酒店、银行等）登录后，可查看持证人授权披露的字段。", "help"));
    }
    if (message) status.appendChild(el("p", message, "alert"));
    loginForm.hidden = !!saved;
    logoutButton.hidden = !saved;
  }

  function problemDetail(body, fallback) {
    return (body && (body.detail || body.title)) || fallback;
  }

  function readJson(response) {
    return response.json().catch(function () { return null; });
  }

  loginForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var id = document.getElementById("client-id");
    var secret = document.getElementById("client-secret");
    if (!id.value.trim() || !secret.value) { renderVerifier("请输入客户端标识和密钥。"); return; }
    var submit = document.getElementById("verifier-login");
    submit.disabled = true;
    var saved = { clientId: id.value.trim() };
    fetch(API + "/auth/token", {
      method: "POST", credentials: "omit", cache: "no-store",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify({ grant_type: "client_credentials", client_id: saved.clientId, client_secret: secret.value })
    }).then(function (response) {
      return readJson(response).then(function (body) {
        if (!response.ok) throw new Error(response.status === 401 ? "客户端标识或密钥错误。" : problemDetail(body, "登录失败，请稍后重试。"));
        saved.token = body.access_token;
        saved.expiresAt = Date.now() + (body.expires_in || 0) * 1000;
        return fetch(API + "/me", { headers: { "Authorization": "Bearer " + saved.token, "Accept": "application/json" },
                                     credentials: "omit", cache: "no-store" });
      });
    }).then(function (response) {
      return readJson(response).then(function (me) {
        saved.name = (me && me.name) || saved.clientId;
        saved.isVerifier = !!(me && me.roles && me.roles.indexOf("verifier") !== -1);
        window.sessionStorage.setItem(TOKEN_KEY, JSON.stringify(saved));
        secret.value = "";
        renderVerifier();
        input.focus();
      });
    }).catch(function (error) {
      renderVerifier(error.message || "登录失败，请检查网络后重试。");
    }).then(function () { submit.disabled = false; });
  });

  logoutButton.addEventListener("click", function () {
    window.sessionStorage.removeItem(TOKEN_KEY);
    renderVerifier();
    document.getElementById("client-id").focus();
  });

  // ---- verification

  function labelsFor(code) {
    if (!code) return Promise.resolve({});
    if (labelCache[code]) return Promise.resolve(labelCache[code]);
    return fetch(API + "/license-types/" + encodeURIComponent(code), { headers: { "Accept": "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (type) {
        var labels = {};
        ((type && type.fields) || []).forEach(function (field) { labels[field.name] = field.label; });
        labelCache[code] = labels;
        return labels;
      })
      .catch(function () { return {}; });
  }

  function renderValid(body, labels, at) {
    result.className = "result valid";
    result.textContent = "";
    result.appendChild(verdict(true, "有效"));
    var period = body.valid_from || body.valid_until ? show(body.valid_from) + " 至 " + show(body.valid_until) : null;
    var shownBy = body.shown_by && body.shown_by.role ?
      (SHOWN_BY[body.shown_by.role] || body.shown_by.role) + (body.shown_by.name_masked ? "（" + body.shown_by.name_masked + "）" : "") : null;
    result.appendChild(facts([
      ["证照类型", body.license_name || body.license_type],
      ["签发机关", body.issuer],
      ["有效期", period],
      ["持证人", body.holder_name_masked],
      ["用途", body.purpose],
      ["出示人", shownBy],
      ["核验时间", stamp(at)]
    ]));
    var disclosed = body.disclosed || {};
    var names = Object.keys(disclosed);
    result.appendChild(el("h3", body.disclosure === "full" ? "持证人披露的信息" : "基本信息"));
    var dl = facts(names.map(function (name) { return [labels[name] || name, show(disclosed[name])]; }));
    dl.id = "disclosed";
    result.appendChild(dl);
    if (!names.length) result.appendChild(el("p", "持证人未披露其他字段。", "note"));
    if (body.disclosure !== "full") {
      result.appendChild(el("p", "匿名核验只显示脱敏姓名。已登记并获授权的核验方登录后，可查看持证人选择披露的字段。", "note"));
    }
  }

  function renderInvalid(reason, detail, at) {
    result.className = "result invalid";
    result.textContent = "";
    result.appendChild(verdict(false, "无效"));
    var label = REASONS[reason];
    var p = el("p", "原因：" + (label || detail || REASONS.unknown), "reason");
    p.id = "reason";
    result.appendChild(p);
    if (detail && label) result.appendChild(el("p", detail, "note"));
    result.appendChild(facts([["核验时间", stamp(at)]]));
    result.appendChild(el("p", "请勿据此办理业务。如有疑问，请持证人重新出示，或联系签发机关。", "note"));
  }

  function renderError(message) {
    result.className = "result error";
    result.textContent = "";
    result.appendChild(el("p", "暂时无法核验", "verdict"));
    result.appendChild(el("p", message, "reason"));
  }

  function finish() {
    button.disabled = false;
    result.removeAttribute("aria-busy");
    input.focus();
    input.select();  // the next scan replaces what is there
  }

  function check() {
    var what = classify(input.value);
    if (what.error) { renderError(what.error); input.focus(); return; }
    var headers = { "Content-Type": "application/json", "Accept": "application/json" };
    var saved = verifier();
    if (saved) headers.Authorization = "Bearer " + saved.token;
    button.disabled = true;
    result.setAttribute("aria-busy", "true");
    fetch(API + "/verifications", { method: "POST", headers: headers, body: JSON.stringify(what),
                                    credentials: "omit", cache: "no-store" })
      .then(function (response) {
        var at = new Date();
        return readJson(response).then(function (body) {
          if (response.ok && body && body.valid === true) {
            return labelsFor(body.license_type).then(function (labels) { renderValid(body, labels, at); });
          }
          if (response.ok && body && body.valid === false) return renderInvalid(body.reason, body.detail, at);
          if (response.status === 400 || response.status === 422) {
            return renderInvalid("unknown", "输入的内容不是亮证码或离线凭证。", at);
          }
          if (response.status === 401 && saved) {
            window.sessionStorage.removeItem(TOKEN_KEY);
            renderVerifier("核验方登录已失效，请重新登录；也可以直接再按“核验”匿名核验。");
            return renderError("核验方登录已失效，本次未核验。");
          }
          if (response.status === 429) return renderError(problemDetail(body, "核验请求过于频繁，请稍后再试。"));
          return renderError(problemDetail(body, "服务暂时不可用，请稍后再试。"));
        });
      })
      .catch(function () { renderError("网络异常，请检查网络后重试。"); })
      .then(finish);
  }

  form.addEventListener("submit", function (event) { event.preventDefault(); check(); });
  input.addEventListener("keydown", function (event) {
    // scanners end with Enter; Shift+Enter still makes a new line
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); check(); }
  });
  document.getElementById("clear-button").addEventListener("click", function () {
    input.value = "";
    result.textContent = "";
    result.className = "result";
    input.focus();
  });

  renderVerifier();
})();
