// Sign in with a passkey on the hosted login page (hosted/passkey.py). The section
// #passkey-signin stays hidden unless this browser has WebAuthn, so a page without
// JavaScript offers only the other methods. No inline script: the CSP allows 'self' only.
(function () {
  "use strict";

  var section = document.getElementById("passkey-signin");
  if (!section || !window.PublicKeyCredential || !navigator.credentials) {
    return;
  }
  var button = document.getElementById("passkey-button");
  var errorBox = document.getElementById("passkey-error");
  var errorText = document.getElementById("passkey-error-message");
  var status = document.getElementById("passkey-status");
  section.hidden = false;

  function fromB64url(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) base64 += "=";
    var raw = atob(base64);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes.buffer;
  }

  function toB64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < bytes.length; i++) raw += String.fromCharCode(bytes[i]);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function requestOptions(json) {
    if (PublicKeyCredential.parseRequestOptionsFromJSON) {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    var options = Object.assign({}, json, { challenge: fromB64url(json.challenge) });
    options.allowCredentials = (json.allowCredentials || []).map(function (c) {
      return Object.assign({}, c, { id: fromB64url(c.id) });
    });
    return options;
  }

  function credentialJSON(credential) {
    if (typeof credential.toJSON === "function") {
      try {
        return credential.toJSON();
      } catch (e) {
        // Some browsers' toJSON fails on extensions: encode by hand below.
      }
    }
    var response = credential.response;
    return {
      id: credential.id,
      rawId: toB64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      response: {
        clientDataJSON: toB64url(response.clientDataJSON),
        authenticatorData: toB64url(response.authenticatorData),
        signature: toB64url(response.signature),
        userHandle: response.userHandle ? toB64url(response.userHandle) : null,
      },
    };
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": section.dataset.csrf, Accept: "application/json" },
      body: JSON.stringify(body),
    }).then(function (answer) {
      return answer
        .json()
        .catch(function () {
          return {};
        })
        .then(function (data) {
          if (!answer.ok) {
            var message =
              data.error ||
              (answer.status === 403
                ? "This page has expired. Reload it and try again."
                : "Signing in with a passkey did not work. Try again or choose another way.");
            throw new Error(message);
          }
          return data;
        });
    });
  }

  function showError(message) {
    status.textContent = "";
    errorText.textContent = message;
    errorBox.hidden = false;
    errorBox.focus();
  }

  function emailHint() {
    var field = document.getElementById("email") || document.getElementById("magic-link-email");
    return field && field.value.trim() ? field.value.trim() : null;
  }

  button.addEventListener("click", function () {
    errorBox.hidden = true;
    button.disabled = true;
    status.textContent = "Waiting for your passkey…";
    var ar = section.dataset.ar;
    var body = { ar: ar };
    var email = emailHint();
    if (email) body.email = email;
    post(section.dataset.optionsUrl, body)
      .then(function (options) {
        return navigator.credentials
          .get({ publicKey: requestOptions(options.publicKey) })
          .then(function (credential) {
            if (!credential) throw new Error("No passkey was chosen.");
            status.textContent = "Checking your passkey…";
            return post(section.dataset.verifyUrl, {
              ar: ar,
              challengeToken: options.challengeToken,
              credential: credentialJSON(credential),
            });
          });
      })
      .then(function (result) {
        status.textContent = "Signed in. Continuing…";
        window.location.assign(result.redirect);
      })
      .catch(function (error) {
        button.disabled = false;
        if (error && (error.name === "NotAllowedError" || error.name === "AbortError")) {
          showError("The passkey request was cancelled or timed out. Try again, or choose another way to sign in.");
        } else {
          showError(error && error.message ? error.message : "Signing in with a passkey did not work.");
        }
      });
  });
})();
