// carebridge code page: where the browser has WebOTP (Chrome on Android), the code is
// taken from the text message, once the patient agrees, and the form is sent. Elsewhere
// autocomplete="one-time-code" lets the phone's keyboard offer it; the page works
// without this script.
(function () {
  'use strict';

  var input = document.getElementById('code');
  if (!input || !input.form || !('OTPCredential' in window) || !navigator.credentials || !window.AbortController) {
    return;
  }
  var form = input.form;
  var abort = new AbortController();
  form.addEventListener('submit', function () {
    abort.abort();
  });
  navigator.credentials.get({ otp: { transport: ['sms'] }, signal: abort.signal })
    .then(function (otp) {
      if (!otp || !otp.code) {
        return;
      }
      input.value = otp.code;
      // A date of birth still to enter: the patient sends the form.
      if (document.getElementById('dob-month')) {
        return;
      }
      if (form.requestSubmit) {
        form.requestSubmit();
      } else {
        form.submit();
      }
    })
    .catch(function () { /* typed by hand */ });
}());
