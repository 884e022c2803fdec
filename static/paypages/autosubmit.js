// Post the gateway's answer back to the merchant at once; without JavaScript the button does it.
document.getElementById("post-back").submit();
