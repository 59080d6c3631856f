"""Roast Lab dashboard entry point: `streamlit run app.py`."""

import streamlit as st

st.set_page_config(page_title="Roast Lab", layout="wide")
st.title("Roast Lab")
st.write("The dashboard pages are being built; see README.md for the CLI.")
