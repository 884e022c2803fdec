from django.urls import path, re_path

from collections_app.paypages import views

app_name = "paypages"

pay_urls = [
    path("", views.pay, name="pay"),
    path("card/", views.card, name="card"),
    path("card/<str:nonce>/", views.card_entry, name="card-entry"),
    path("card/<str:nonce>/return/", views.card_return, name="card-return"),
    path("card/<str:nonce>/complete/", views.card_complete, name="card-complete"),
    path("done/<str:nonce>/", views.result, name="result"),
    path("sepa/", views.sepa, name="sepa"),
    path("transfer/", views.transfer, name="transfer"),
    re_path(r"^transfer/epc\.(?P<fmt>png|svg)$", views.transfer_qr, name="transfer-qr"),
    re_path(r"^qr\.(?P<fmt>png|svg)$", views.pay_link_qr, name="qr"),
    path("instalments/", views.instalments, name="instalments"),
]
