/*
 * Blindgate checkout strings, one dictionary per language, and the lookup used
 * by checkout.js. The object between the BEGIN/END markers must stay strict
 * JSON: the server (checkout.Assets.Strings) parses the same text to render the
 * page's labels before any script runs, so there is one source for each string.
 * Placeholders are written {name}.
 */
(function (root) {
  "use strict";

  var STRINGS = /*BEGIN-STRINGS*/
{
  "en": {
    "title": "Secure card entry",
    "heading": "Card details",
    "legend": "Card details",
    "noscript": "Your browser must run JavaScript to encrypt your card before it is sent. Please enable JavaScript and reload the page.",
    "label_number": "Card number",
    "label_exp": "Expiry date",
    "hint_exp": "MM/YY",
    "placeholder_exp": "MM/YY",
    "label_cvc": "Security code",
    "hint_cvc": "3 digits on the back, or 4 on the front for American Express",
    "hint_cvc_back": "3 digits on the back of the card",
    "hint_cvc_front": "4 digits on the front of the card",
    "label_name": "Name on card",
    "optional": "(optional)",
    "submit_save": "Save card",
    "submit_pay": "Pay",
    "submit_pay_amount": "Pay {amount}",
    "submit_donate": "Donate",
    "submit_donate_amount": "Donate {amount}",
    "submit_continue": "Continue",
    "summary_merchant": "Merchant",
    "summary_amount": "Amount",
    "brands_accepted": "Accepted cards",
    "secure_note": "Your card details are encrypted in your browser before they leave this page.",
    "brand_unknown": "Card type not recognised yet",
    "brand_label": "Card type: {brand}",
    "status_processing": "Encrypting and sending your card…",
    "status_success": "Your card has been saved.",
    "status_redirect": "Your card has been saved. Returning to the shop…",
    "err_browser": "This browser cannot encrypt card details securely. Please update it or use another browser.",
    "err_form": "Please correct the highlighted fields.",
    "err_number_empty": "Enter your card number.",
    "err_number_brand": "This card type is not accepted.",
    "err_number_length": "This card number has the wrong number of digits.",
    "err_number_luhn": "This card number is not valid. Check it for typing errors.",
    "err_exp_empty": "Enter the expiry date.",
    "err_exp_format": "Enter the expiry date as MM/YY.",
    "err_exp_month": "The month must be from 01 to 12.",
    "err_exp_past": "This card has expired.",
    "err_exp_far": "This expiry date is too far in the future.",
    "err_cvc_empty": "Enter the security code.",
    "err_cvc_length": "The security code has {n} digits.",
    "srv_card_invalid": "The card details were not accepted. Check them and try again.",
    "srv_card_expired": "This card has expired. Please use another card.",
    "srv_session_expired": "This payment session has expired. Go back to the shop and start again.",
    "srv_too_many": "Too many attempts. Try again in {seconds} seconds.",
    "srv_too_many_later": "Too many attempts. Please wait a moment and try again.",
    "srv_unavailable": "The service is temporarily unavailable. Please try again later.",
    "srv_stale": "This page is out of date. Reload the page and try again.",
    "srv_busy": "Your payment is already being processed. Please wait a moment and try again.",
    "srv_cvc_invalid": "The security code was not accepted. Check it and try again.",
    "srv_card_refused": "This card cannot be used for this payment. Please use another card.",
    "srv_network": "We could not reach the server. Check your connection and try again.",
    "srv_generic": "Something went wrong. Please try again."
  },
  "fr": {
    "title": "Saisie sécurisée de la carte",
    "heading": "Informations de carte",
    "legend": "Informations de carte",
    "noscript": "Votre navigateur doit exécuter JavaScript pour chiffrer votre carte avant son envoi. Activez JavaScript puis rechargez la page.",
    "label_number": "Numéro de carte",
    "label_exp": "Date d’expiration",
    "hint_exp": "MM/AA",
    "placeholder_exp": "MM/AA",
    "label_cvc": "Cryptogramme visuel",
    "hint_cvc": "3 chiffres au dos, ou 4 au recto pour American Express",
    "hint_cvc_back": "3 chiffres au dos de la carte",
    "hint_cvc_front": "4 chiffres au recto de la carte",
    "label_name": "Nom du titulaire",
    "optional": "(facultatif)",
    "submit_save": "Enregistrer la carte",
    "submit_pay": "Payer",
    "submit_pay_amount": "Payer {amount}",
    "submit_donate": "Faire un don",
    "submit_donate_amount": "Donner {amount}",
    "submit_continue": "Continuer",
    "summary_merchant": "Marchand",
    "summary_amount": "Montant",
    "brands_accepted": "Cartes acceptées",
    "secure_note": "Vos données de carte sont chiffrées dans votre navigateur avant de quitter cette page.",
    "brand_unknown": "Type de carte pas encore reconnu",
    "brand_label": "Type de carte : {brand}",
    "status_processing": "Chiffrement et envoi de votre carte…",
    "status_success": "Votre carte a été enregistrée.",
    "status_redirect": "Votre carte a été enregistrée. Retour à la boutique…",
    "err_browser": "Ce navigateur ne peut pas chiffrer les données de carte de façon sûre. Mettez-le à jour ou utilisez un autre navigateur.",
    "err_form": "Veuillez corriger les champs signalés.",
    "err_number_empty": "Saisissez votre numéro de carte.",
    "err_number_brand": "Ce type de carte n’est pas accepté.",
    "err_number_length": "Ce numéro de carte n’a pas le bon nombre de chiffres.",
    "err_number_luhn": "Ce numéro de carte n’est pas valide. Vérifiez qu’il ne contient pas de faute de frappe.",
    "err_exp_empty": "Saisissez la date d’expiration.",
    "err_exp_format": "Saisissez la date d’expiration au format MM/AA.",
    "err_exp_month": "Le mois doit être compris entre 01 et 12.",
    "err_exp_past": "Cette carte a expiré.",
    "err_exp_far": "Cette date d’expiration est trop lointaine.",
    "err_cvc_empty": "Saisissez le cryptogramme visuel.",
    "err_cvc_length": "Le cryptogramme visuel comporte {n} chiffres.",
    "srv_card_invalid": "Les informations de carte n’ont pas été acceptées. Vérifiez-les et réessayez.",
    "srv_card_expired": "Cette carte a expiré. Veuillez utiliser une autre carte.",
    "srv_session_expired": "Cette session de paiement a expiré. Retournez sur la boutique et recommencez.",
    "srv_too_many": "Trop de tentatives. Réessayez dans {seconds} secondes.",
    "srv_too_many_later": "Trop de tentatives. Patientez un instant puis réessayez.",
    "srv_unavailable": "Le service est momentanément indisponible. Veuillez réessayer plus tard.",
    "srv_stale": "Cette page n’est plus à jour. Rechargez la page et réessayez.",
    "srv_busy": "Votre paiement est déjà en cours de traitement. Patientez un instant puis réessayez.",
    "srv_cvc_invalid": "Le cryptogramme visuel n’a pas été accepté. Vérifiez-le et réessayez.",
    "srv_card_refused": "Cette carte ne peut pas être utilisée pour ce paiement. Veuillez utiliser une autre carte.",
    "srv_network": "Impossible de joindre le serveur. Vérifiez votre connexion et réessayez.",
    "srv_generic": "Une erreur est survenue. Veuillez réessayer."
  },
  "de": {
    "title": "Sichere Karteneingabe",
    "heading": "Kartendaten",
    "legend": "Kartendaten",
    "noscript": "Ihr Browser muss JavaScript ausführen, um Ihre Karte vor dem Senden zu verschlüsseln. Bitte aktivieren Sie JavaScript und laden Sie die Seite neu.",
    "label_number": "Kartennummer",
    "label_exp": "Ablaufdatum",
    "hint_exp": "MM/JJ",
    "placeholder_exp": "MM/JJ",
    "label_cvc": "Prüfnummer",
    "hint_cvc": "3 Ziffern auf der Rückseite, bei American Express 4 auf der Vorderseite",
    "hint_cvc_back": "3 Ziffern auf der Rückseite der Karte",
    "hint_cvc_front": "4 Ziffern auf der Vorderseite der Karte",
    "label_name": "Name auf der Karte",
    "optional": "(optional)",
    "submit_save": "Karte speichern",
    "submit_pay": "Bezahlen",
    "submit_pay_amount": "{amount} bezahlen",
    "submit_donate": "Spenden",
    "submit_donate_amount": "{amount} spenden",
    "submit_continue": "Weiter",
    "summary_merchant": "Händler",
    "summary_amount": "Betrag",
    "brands_accepted": "Akzeptierte Karten",
    "secure_note": "Ihre Kartendaten werden in Ihrem Browser verschlüsselt, bevor sie diese Seite verlassen.",
    "brand_unknown": "Kartentyp noch nicht erkannt",
    "brand_label": "Kartentyp: {brand}",
    "status_processing": "Ihre Karte wird verschlüsselt und gesendet…",
    "status_success": "Ihre Karte wurde gespeichert.",
    "status_redirect": "Ihre Karte wurde gespeichert. Zurück zum Shop…",
    "err_browser": "Dieser Browser kann Kartendaten nicht sicher verschlüsseln. Bitte aktualisieren Sie ihn oder verwenden Sie einen anderen Browser.",
    "err_form": "Bitte korrigieren Sie die markierten Felder.",
    "err_number_empty": "Geben Sie Ihre Kartennummer ein.",
    "err_number_brand": "Dieser Kartentyp wird nicht akzeptiert.",
    "err_number_length": "Diese Kartennummer hat die falsche Anzahl an Ziffern.",
    "err_number_luhn": "Diese Kartennummer ist ungültig. Prüfen Sie sie auf Tippfehler.",
    "err_exp_empty": "Geben Sie das Ablaufdatum ein.",
    "err_exp_format": "Geben Sie das Ablaufdatum im Format MM/JJ ein.",
    "err_exp_month": "Der Monat muss zwischen 01 und 12 liegen.",
    "err_exp_past": "Diese Karte ist abgelaufen.",
    "err_exp_far": "Dieses Ablaufdatum liegt zu weit in der Zukunft.",
    "err_cvc_empty": "Geben Sie die Prüfnummer ein.",
    "err_cvc_length": "Die Prüfnummer hat {n} Ziffern.",
    "srv_card_invalid": "Die Kartendaten wurden nicht akzeptiert. Prüfen Sie sie und versuchen Sie es erneut.",
    "srv_card_expired": "Diese Karte ist abgelaufen. Bitte verwenden Sie eine andere Karte.",
    "srv_session_expired": "Diese Zahlungssitzung ist abgelaufen. Kehren Sie zum Shop zurück und beginnen Sie erneut.",
    "srv_too_many": "Zu viele Versuche. Versuchen Sie es in {seconds} Sekunden erneut.",
    "srv_too_many_later": "Zu viele Versuche. Bitte warten Sie einen Moment und versuchen Sie es erneut.",
    "srv_unavailable": "Der Dienst ist vorübergehend nicht verfügbar. Bitte versuchen Sie es später erneut.",
    "srv_stale": "Diese Seite ist veraltet. Laden Sie die Seite neu und versuchen Sie es erneut.",
    "srv_busy": "Ihre Zahlung wird bereits verarbeitet. Bitte warten Sie einen Moment und versuchen Sie es erneut.",
    "srv_cvc_invalid": "Die Prüfnummer wurde nicht akzeptiert. Prüfen Sie sie und versuchen Sie es erneut.",
    "srv_card_refused": "Diese Karte kann für diese Zahlung nicht verwendet werden. Bitte verwenden Sie eine andere Karte.",
    "srv_network": "Der Server ist nicht erreichbar. Prüfen Sie Ihre Verbindung und versuchen Sie es erneut.",
    "srv_generic": "Etwas ist schiefgelaufen. Bitte versuchen Sie es erneut."
  }
}
/*END-STRINGS*/;

  var FALLBACK = "en";

  // pick maps a session locale such as "fr-CA" or "de_DE" to a language of the
  // dictionary, falling back to English. checkout.Assets.Strings does the same.
  function pick(locale) {
    var primary = String(locale || "").toLowerCase().split(/[-_]/)[0];
    return Object.prototype.hasOwnProperty.call(STRINGS, primary) ? primary : FALLBACK;
  }

  function t(lang, key, params) {
    var dict = STRINGS[pick(lang)];
    var s = Object.prototype.hasOwnProperty.call(dict, key) ? dict[key] : STRINGS[FALLBACK][key];
    if (typeof s !== "string") return key;
    return s.replace(/\{(\w+)\}/g, function (all, name) {
      return params && Object.prototype.hasOwnProperty.call(params, name) ? String(params[name]) : all;
    });
  }

  root.BlindgateI18n = Object.freeze({
    languages: Object.freeze(Object.keys(STRINGS)),
    pick: pick,
    t: t
  });
})(window);
